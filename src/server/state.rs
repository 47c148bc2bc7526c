//! The snapshot being served, and how a new one is noticed and loaded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::collections::{CollectionSummary, summarize};
use super::{ServerOptions, open_warehouse};
use crate::error::{Error, Result};
use crate::query::Warehouse;
use crate::store::Location;

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
pub(super) type CollectionMemo = Mutex<HashMap<String, Vec<String>>>;

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
        Some(files) => summarize(files, memo).await?,
        None => Vec::new(),
    };
    Ok(Snapshot {
        warehouse,
        version,
        collections,
    })
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
