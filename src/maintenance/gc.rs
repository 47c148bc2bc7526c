//! Garbage collection: remove the rows of items whose source keys disappeared from the
//! inventory (a `diff --removed` file, or any inventory listing the gone keys).
//!
//! ```text
//! GONE keys ─▶ ids (key basename minus the suffix) ─▶ digests
//! live files ─▶ read the `id` column of each ─▶ the files holding a gone id
//!   ─▶ per bucket: merge only those files without the gone rows (compaction's merge: dedup by
//!      the version rule, sort) ─▶ ONE replace commit (earthcatalog.operation = gc)
//!   ─▶ upload the catalog ─▶ delete the replaced files ─▶ remove the ids from the hash index
//! ```
//!
//! Runs under the catalog lock. Nothing else is touched: files without a gone id are neither
//! read in full nor rewritten. A crash before the commit leaves the table as it was (the new
//! files are unregistered leftovers, removed by a later locked `compact`); after the commit,
//! the hash index is repaired by the next run's reconciliation (a `gc` snapshot makes it
//! rebuild), so an id removed from the table is never skipped by a later ingest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};

use crate::catalog::{Catalog, OpenMode};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::geoparquet::WriterOptions;
use crate::hash_index::{self, IdHash, IndexStamp, hash_id, key_item_id};
use crate::inventory::{InventoryEntry, InventoryOptions, read_inventory};
use crate::lock::RenewingLock;
use crate::partition::PartitionValue;
use crate::report::Reporter;
use crate::rewrite::{Bucket, MergeContext, MergedBucket, canonical, delete_all, merge_bucket};
use crate::store::Location;

/// Files whose ids are read at once while looking for gone ids.
const SCAN_CONCURRENCY: usize = 16;

/// What a gc run needs.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Warehouse root.
    pub warehouse: String,
    /// Catalog database.
    pub catalog: String,
    /// Keys whose items go (a `diff --removed` file or any inventory).
    pub removed: String,
    /// Key suffix (the id is the basename minus it).
    pub suffix: String,
    /// The hash index (default: the table property, else beside the warehouse).
    pub hash_index: Option<String>,
    /// Take the catalog lock.
    pub use_lock: bool,
    /// Lock object (default: `.lock` beside the catalog).
    pub lock_location: Option<String>,
    /// Report what would happen; write and delete nothing.
    pub dry_run: bool,
    /// Buckets rewritten concurrently.
    pub parallelism: usize,
    /// File writer settings.
    pub writer: WriterOptions,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            warehouse: String::new(),
            catalog: String::new(),
            removed: String::new(),
            suffix: crate::inventory::DEFAULT_SUFFIX.to_string(),
            hash_index: None,
            use_lock: true,
            lock_location: None,
            dry_run: false,
            parallelism: 4,
            writer: WriterOptions::default(),
        }
    }
}

/// What a gc run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcMetrics {
    /// Distinct ids listed as gone.
    pub gone_ids: u64,
    /// Live files read (their `id` column).
    pub files_scanned: u64,
    /// Files holding a gone id (rewritten, or dropped when nothing stays).
    pub files_affected: u64,
    /// Files written in their place.
    pub files_written: u64,
    /// Rows removed (every cell of every gone id).
    pub rows_removed: u64,
    /// Gone ids the table held.
    pub ids_removed: u64,
    /// Gone ids the table did not hold.
    pub ids_not_found: u64,
    /// Snapshot after the commit.
    pub snapshot_id: Option<i64>,
    /// Hash index rows after the update.
    pub hash_index_total: Option<u64>,
    /// Non-fatal warnings.
    pub warnings: Vec<String>,
    /// Nothing was written or deleted.
    pub dry_run: bool,
    /// Wall time.
    pub elapsed_secs: f64,
}

/// Remove the items listed in `options.removed` (see the module docs).
pub async fn gc(options: &GcOptions, reporter: &dyn Reporter) -> Result<GcMetrics> {
    // Like compact: a mistyped catalog is an error before anything is locked or created.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let lock = super::take_lock(
        options.use_lock,
        &options.catalog,
        &options.lock_location,
        "earthcatalog-gc",
        clock,
    )
    .await?;
    let result = gc_inner(options, reporter, lock.as_ref()).await;
    crate::lock::release_after(lock, result).await
}

async fn gc_inner(
    options: &GcOptions,
    reporter: &dyn Reporter,
    lock: Option<&RenewingLock>,
) -> Result<GcMetrics> {
    let started = Instant::now();
    let mut m = GcMetrics {
        dry_run: options.dry_run,
        ..Default::default()
    };
    let gone = gone_ids(&options.removed, &options.suffix).await?;
    m.gone_ids = gone.len() as u64;
    let catalog =
        Catalog::open_with(&options.catalog, &options.warehouse, OpenMode::MustExist).await?;
    let warehouse = catalog.warehouse().clone();
    let Some(table) = catalog.load_table().await? else {
        return Err(Error::NotFound {
            what: format!("table {} in catalog", catalog.ident()),
            location: options.catalog.clone(),
            hint: "; nothing to collect".into(),
        });
    };
    if gone.is_empty() {
        m.elapsed_secs = started.elapsed().as_secs_f64();
        return Ok(m);
    }
    let gone = Arc::new(gone);
    let live = crate::catalog::live::scan(&table, &crate::catalog::prune::Pruner::default())
        .await?
        .files;
    m.files_scanned = live.len() as u64;

    // Which files hold a gone id (the id column only).
    reporter.phase("finding gone ids", Some(live.len() as u64));
    let hits: Vec<(usize, u64, HashSet<IdHash>)> = futures::stream::iter(live.iter().enumerate())
        .map(|(i, f)| {
            let gone = gone.clone();
            async move {
                let ids = hash_index::ids_of_files(&[(f.path.clone(), f.bytes)]).await?;
                let rows = ids.iter().filter(|h| gone.contains(*h)).count() as u64;
                let found: HashSet<IdHash> = ids.into_iter().filter(|h| gone.contains(h)).collect();
                Ok::<_, Error>((i, rows, found))
            }
        })
        .buffer_unordered(SCAN_CONCURRENCY)
        .inspect(|_| reporter.advance(1))
        .try_filter(|(_, rows, _)| futures::future::ready(*rows > 0))
        .try_collect()
        .await?;
    reporter.finish_phase();
    let mut found: HashSet<IdHash> = HashSet::new();
    let mut buckets: BTreeMap<PartitionValue, Bucket> = BTreeMap::new();
    for (i, rows, ids) in hits {
        let f = &live[i];
        m.files_affected += 1;
        m.rows_removed += rows;
        found.extend(ids);
        let url = canonical(&f.path);
        let key = crate::partition::partition_of_path(&url).unwrap_or_else(|| PartitionValue {
            cell: f
                .cell
                .clone()
                .unwrap_or_else(|| crate::grid::NONE_KEY.to_string()),
            year: f.year,
        });
        buckets
            .entry(key.clone())
            .or_insert_with(|| Bucket {
                key,
                files: Vec::new(),
            })
            .files
            .push((url, f.sequence_number.unwrap_or(0), f.bytes, f.rows));
    }
    m.ids_removed = found.len() as u64;
    m.ids_not_found = m.gone_ids - m.ids_removed;
    if options.dry_run || buckets.is_empty() {
        m.snapshot_id = table.metadata().current_snapshot_id();
        m.elapsed_secs = started.elapsed().as_secs_f64();
        return Ok(m);
    }
    let table = catalog.with_covering(table).await?;

    // Rewrite the affected files of each bucket without the gone rows.
    let ctx = MergeContext::of(&table, &warehouse, options.writer.clone(), None).await?;
    let exclude = Arc::new(found.clone());
    reporter.phase("rewriting", Some(buckets.len() as u64));
    // Every merge is awaited before the first error is returned: a merge of local files runs
    // on a thread of its own (`store::off_runtime`) and goes on writing when its future is
    // dropped, so none may still be writing once the lock is released.
    let results: Vec<Result<(Bucket, MergedBucket)>> = futures::stream::iter(buckets.into_values())
        .map(|bucket| {
            let (ctx, exclude) = (ctx.clone(), exclude.clone());
            async move {
                let m = merge_bucket(&bucket, &ctx, Some(exclude)).await?;
                Ok::<_, Error>((bucket, m))
            }
        })
        .buffer_unordered(options.parallelism.max(1))
        .inspect(|_| reporter.advance(1))
        .collect()
        .await;
    let merged: Vec<(Bucket, MergedBucket)> = results.into_iter().collect::<Result<_>>()?;
    reporter.finish_phase();
    let by_canonical: HashMap<String, String> = live
        .iter()
        .map(|f| (canonical(&f.path), f.path.clone()))
        .collect();
    let mut removed = Vec::new();
    let mut removed_registered = Vec::new();
    let mut added = Vec::new();
    for (bucket, merged) in merged {
        for f in &bucket.files {
            removed_registered.push(
                by_canonical
                    .get(&f.0)
                    .cloned()
                    .unwrap_or_else(|| f.0.clone()),
            );
            removed.push(f.0.clone());
        }
        m.files_written += merged.files.len() as u64;
        added.extend(merged.files.into_iter().map(|(df, _)| df));
    }
    if let Some(lock) = lock {
        lock.verify().await?;
    }
    crate::fault::check("gc.before_commit")?;
    let props = HashMap::from([("earthcatalog.operation".to_string(), "gc".to_string())]);
    let table = catalog
        .replace_files(&table, &removed_registered, added, props)
        .await?;
    catalog.upload().await?;
    m.snapshot_id = table.metadata().current_snapshot_id();
    crate::fault::check("gc.after_commit")?;
    delete_all(&removed).await?;

    // The ids left the table: take them out of the index, stamped with the new snapshot.
    let index = match &options.hash_index {
        Some(h) => h.clone(),
        None => table
            .metadata()
            .properties()
            .get(crate::schema::PROP_HASH_INDEX)
            .cloned()
            .unwrap_or_else(|| hash_index::default_index_path(warehouse.url())),
    };
    let loc = Location::parse(&index)?;
    let stamp = IndexStamp::of(&table);
    match hash_index::remove_from_index(&loc, found.into_iter().collect(), stamp.as_ref()).await {
        Ok((_, total)) => m.hash_index_total = Some(total),
        Err(e) => m.warnings.push(format!(
            "hash index {} not updated after the commit (the next ingest rebuilds it): {e}",
            loc.url()
        )),
    }
    m.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(m)
}

/// The digests of the ids of the keys listed at `url`.
async fn gone_ids(url: &str, suffix: &str) -> Result<HashSet<IdHash>> {
    let mut out = HashSet::new();
    let mut stream = read_inventory(url, InventoryOptions::default().with_suffix(suffix));
    while let Some(entry) = stream.try_next().await? {
        if let InventoryEntry::Record(rec) = entry {
            out.insert(hash_id(key_item_id(&rec.key, suffix)));
        }
    }
    Ok(out)
}
