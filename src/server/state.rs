//! The snapshot being served, and how a new one is noticed and loaded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::collections::{CollectionSummary, summarize};
use super::{ServerOptions, open_warehouse};
use crate::error::{Error, Result};
use crate::hash_index::{IdHash, IndexStamp};
use crate::query::{Bucket, IdLocator, Warehouse, id_buckets};
use crate::store::Location;

/// Most rows of files committed after the locator's snapshot that are read into memory to
/// cover its gap; beyond that the locator is not used (rebuild it: `earthcatalog index locate`).
const MAX_GAP_ROWS: u64 = 2_000_000;

/// The id locator as it applies to one snapshot: the file, plus the buckets of ids in files
/// committed after it was built.
#[derive(Debug)]
pub struct LocatorView {
    /// The locator file.
    pub locator: IdLocator,
    /// Buckets of ids added since the locator's snapshot.
    pub extra: HashMap<IdHash, Vec<Bucket>>,
}

impl LocatorView {
    /// Every bucket that may hold `id`.
    pub(super) async fn buckets(&self, id: &str) -> Result<Vec<Bucket>> {
        let mut b = self.locator.buckets(id).await?;
        if let Some(more) = self.extra.get(&crate::hash_index::hash_id(id)) {
            b.extend(more.iter().cloned());
        }
        b.sort();
        b.dedup();
        Ok(b)
    }
}

/// The locator for `wh`'s snapshot, when one exists for this table and its snapshot is in the
/// current one's history (the ids of files committed since are read into memory). `None`
/// (logged) otherwise: `items/{id}` then scans every file.
async fn locator_for(wh: &Warehouse) -> Option<LocatorView> {
    let table = wh.table()?;
    let current = IndexStamp::of(table)?;
    let path = wh.locator_path()?;
    let fallback = |why: String| {
        tracing::warn!(
            locator = %path,
            "{why}; items/{{id}} lookups scan every file (build it: earthcatalog index locate)"
        );
        None
    };
    let locator = match Location::parse(&path) {
        Ok(loc) => match IdLocator::open(&loc).await {
            Ok(Some(l)) => l,
            Ok(None) => return fallback("no id locator".into()),
            Err(e) => return fallback(format!("the id locator cannot be read: {e}")),
        },
        Err(e) => return fallback(format!("bad locator path: {e}")),
    };
    let Some(stamp) = locator.stamp().cloned() else {
        return fallback("the id locator records no snapshot".into());
    };
    if stamp.table_uuid != current.table_uuid {
        return fallback(format!(
            "the id locator belongs to table {}",
            stamp.table_uuid
        ));
    }
    // Snapshots committed after the locator's, newest first.
    let md = table.metadata();
    let mut gap = std::collections::HashSet::new();
    let mut at = Some(current.snapshot_id);
    while let Some(id) = at {
        if id == stamp.snapshot_id {
            break;
        }
        gap.insert(id);
        at = md.snapshot_by_id(id).and_then(|s| s.parent_snapshot_id());
    }
    if at.is_none() {
        return fallback(format!(
            "the id locator's snapshot {} is not in the table's history",
            stamp.snapshot_id
        ));
    }
    let files: Vec<crate::query::FileEntry> = wh
        .cached_files()?
        .entries()
        .iter()
        .filter(|(e, _)| gap.contains(&e.file.snapshot_id))
        .map(|(e, _)| e.file.clone())
        .collect();
    let rows: u64 = files.iter().map(|f| f.rows).sum();
    if rows > MAX_GAP_ROWS {
        return fallback(format!(
            "{rows} rows were committed after the id locator's snapshot (more than {MAX_GAP_ROWS})"
        ));
    }
    let mut extra: HashMap<IdHash, Vec<Bucket>> = HashMap::new();
    match id_buckets(&files).await {
        Ok(pairs) => {
            for (h, b) in pairs {
                extra.entry(h).or_default().push(b);
            }
        }
        Err(e) => return fallback(format!("reading the ids committed since the locator: {e}")),
    }
    Some(LocatorView { locator, extra })
}

/// What identifies one version of `catalog.db`: its ETag / object version when the store gives
/// them, else (for local files too) its modification time and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceVersion {
    /// ETag.
    pub e_tag: Option<String>,
    /// Object version.
    pub version: Option<String>,
    /// Last modified (RFC 3339), when no ETag is known or the catalog is local.
    pub modified: Option<String>,
    /// Size in bytes, when no ETag is known or the catalog is local.
    pub size: Option<u64>,
}

impl SourceVersion {
    fn from_meta(meta: &object_store::ObjectMeta, local: bool) -> Self {
        Self {
            e_tag: meta.e_tag.clone(),
            version: meta.version.clone(),
            modified: local.then(|| meta.last_modified.to_rfc3339()),
            size: local.then_some(meta.size),
        }
    }
}

/// The current version of the catalog at `catalog` (one HEAD request).
pub(super) async fn head_version(catalog: &str) -> Result<SourceVersion> {
    use object_store::ObjectStoreExt as _;
    let loc = Location::parse(catalog)?;
    match loc.store().head(loc.prefix()).await {
        Ok(meta) => Ok(SourceVersion::from_meta(&meta, loc.is_local())),
        Err(object_store::Error::NotFound { .. }) => Err(Error::NotFound {
            what: "catalog".into(),
            location: catalog.to_string(),
            hint: String::new(),
        }),
        Err(e) => Err(Error::store(loc.url(), e)),
    }
}

/// One served state of the catalog: an opened warehouse (file list in memory) and what the
/// collection endpoints show. Immutable; replaced whole on reload.
#[derive(Debug)]
pub struct Snapshot {
    /// The warehouse at this snapshot.
    pub warehouse: Warehouse,
    /// The catalog version it was loaded from.
    pub version: SourceVersion,
    /// Collections with their extents, sorted by id.
    pub collections: Vec<CollectionSummary>,
    /// The id locator, when one covers this snapshot.
    pub locator: Option<LocatorView>,
    /// The version of the locator file when it was loaded (`None`: there was none).
    pub locator_version: Option<SourceVersion>,
}

impl Snapshot {
    /// The table snapshot id served (`None` for a catalog without table or snapshot).
    pub fn snapshot_id(&self) -> Option<i64> {
        self.warehouse.snapshot_id()
    }

    /// The summary of collection `id`.
    pub fn collection(&self, id: &str) -> Option<&CollectionSummary> {
        self.collections
            .binary_search_by(|c| c.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.collections[i])
    }
}

/// Distinct collections of files whose manifest bounds do not say (kept across reloads:
/// data files never change).
pub(super) type CollectionMemo = Mutex<HashMap<String, Vec<Option<String>>>>;

/// Load the catalog as it is now.
pub(super) async fn load(options: &ServerOptions, memo: &CollectionMemo) -> Result<Snapshot> {
    let before = head_version(&options.catalog).await?;
    let warehouse = open_warehouse(options).await?;
    // A remote catalog knows the version it downloaded; a local one was read after `before`,
    // so a commit in between only causes one more (harmless) reload.
    let version = match warehouse.catalog_version() {
        Some(v) if v.e_tag.is_some() || v.version.is_some() => SourceVersion {
            e_tag: v.e_tag,
            version: v.version,
            modified: None,
            size: None,
        },
        _ => before,
    };
    let collections = match warehouse.cached_files() {
        Some(files) => summarize(files, memo, &options.default_collection).await?,
        None => Vec::new(),
    };
    let locator_version = locator_version(&warehouse).await;
    let locator = locator_for(&warehouse).await;
    Ok(Snapshot {
        warehouse,
        version,
        collections,
        locator,
        locator_version,
    })
}

/// The version of `wh`'s id locator file (one HEAD request); `None` when there is none or it
/// cannot be reached (then a reload finds out why).
pub(super) async fn locator_version(wh: &Warehouse) -> Option<SourceVersion> {
    use object_store::ObjectStoreExt as _;
    let loc = Location::parse(&wh.locator_path()?).ok()?;
    let meta = loc.store().head(loc.prefix()).await.ok()?;
    // ETags of local files follow inode, size and time; keep time and size for them too.
    Some(SourceVersion::from_meta(&meta, true))
}

/// The snapshot being served, swapped atomically.
#[derive(Debug)]
pub(super) struct Current {
    inner: RwLock<Arc<Snapshot>>,
}

impl Current {
    pub(super) fn new(s: Snapshot) -> Self {
        Self {
            inner: RwLock::new(Arc::new(s)),
        }
    }

    pub(super) fn get(&self) -> Arc<Snapshot> {
        match self.inner.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    pub(super) fn set(&self, s: Arc<Snapshot>) {
        match self.inner.write() {
            Ok(mut g) => *g = s,
            Err(p) => *p.into_inner() = s,
        }
    }
}
