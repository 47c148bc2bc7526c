//! Maintenance: compaction and repair of a warehouse and its catalog.
//!
//! ```text
//! compact: lock → catalog → live files (manifests) + warehouse listing
//!        → buckets (cell × year) with ≥ threshold live files
//!        → per bucket (in parallel): read all files, dedup by id, sort, write compacted_<hex>.parquet
//!        → ONE replace commit (removed + added) → upload catalog → delete replaced objects
//! repair: live files vs. warehouse listing → ONE commit that drops missing and adds unregistered files
//! ```
//!
//! Dedup rule (docs/decisions.md): per id, the row with the latest `updated` wins, then the latest
//! `created`, then the row from the most recently committed file (higher sequence number).
//! Replaced objects are deleted only after the commit (and upload) succeeded.
//!
//! Leftovers of killed runs are removed by the next compaction:
//! - files that a compaction replaced but did not delete (not live, but in a snapshot still in
//!   the table's history), always;
//! - files that no snapshot in the table's history has ever registered — the `part_*` files of
//!   a killed ingest's chunk, the `compacted_*` outputs of a killed compaction, and local
//!   `*.parquet#<n>` staging files of an interrupted put — only while the run holds the lock
//!   and only once they are older than [`CompactOptions::leftover_min_age`], so the files of a
//!   writer that is still running are never touched. Without the lock they are only reported.
//!
//! `repair` is the opposite tool for the same files: it *registers* unregistered files (use it
//! when they hold data the catalog lost, e.g. after restoring an old `catalog.db`); `compact`
//! *deletes* them (they are what a killed run left; rerunning its inventory ingests the items
//! again). Neither command creates a catalog: both need an existing one.
//! A bucket that cannot be merged is reported and left untouched.

mod columnar;
pub mod gc;
mod rebuild;
pub mod scan;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use crate::catalog::datafile::data_file_from_footer;
use crate::catalog::{Catalog, OpenMode, existing_table_evidence, require_catalog};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::geoparquet::{WriterOptions, encode_group, sort_rows};
use crate::item::{Columns, ItemRow, Version};
use crate::lock::{LockOptions, RenewingLock};
use crate::partition::{PartitionValue, Placement};
use crate::report::Reporter;
use crate::schema::{OVERFLOW_COLUMN, table_columns};
use crate::store::{Location, put_if_absent};
use scan::{WarehouseFile, list_staging, list_warehouse};

/// Default [`CompactOptions::leftover_min_age`]: longer than any chunk of a running ingest
/// takes between writing its files and committing them.
pub const DEFAULT_LEFTOVER_MIN_AGE_HOURS: i64 = 6;

/// Options of a compaction (the Python `compact_warehouse` surface plus ours).
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Warehouse root.
    pub warehouse: String,
    /// `catalog.db` location.
    pub catalog: String,
    /// Compact buckets with at least this many live files.
    pub threshold: usize,
    /// Take the catalog lock.
    pub use_lock: bool,
    /// Lock object; default `.lock` beside the catalog.
    pub lock_location: Option<String>,
    /// Report only; write and delete nothing.
    pub dry_run: bool,
    /// Split outputs above this many rows.
    pub max_rows_per_file: Option<usize>,
    /// Buckets merged concurrently.
    pub parallelism: usize,
    /// File writer settings.
    pub writer: WriterOptions,
    /// Never-committed files younger than this are left alone (a running writer may still
    /// commit them); older ones are deleted when the run holds the lock.
    pub leftover_min_age: chrono::Duration,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            warehouse: String::new(),
            catalog: String::new(),
            threshold: 2,
            use_lock: false,
            lock_location: None,
            dry_run: false,
            max_rows_per_file: None,
            parallelism: 4,
            writer: WriterOptions::default(),
            leftover_min_age: chrono::Duration::hours(DEFAULT_LEFTOVER_MIN_AGE_HOURS),
        }
    }
}

/// A bucket that could not be compacted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BucketFailure {
    /// `grid_partition=…/year=…`.
    pub bucket: String,
    /// Why.
    pub reason: String,
}

/// What a compaction did (or would do, on a dry run).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CompactMetrics {
    /// Buckets (cell × year) with live files.
    pub buckets_scanned: u64,
    /// Buckets merged.
    pub buckets_compacted: u64,
    /// Live data files before.
    pub files_before: u64,
    /// Live data files after.
    pub files_after: u64,
    /// Rows in the compacted buckets before.
    pub rows_before: u64,
    /// Rows in the compacted buckets after.
    pub rows_after: u64,
    /// Rows dropped as duplicates (same id in the same bucket).
    pub duplicates_removed: u64,
    /// Bytes of the compacted buckets before.
    pub bytes_before: u64,
    /// Bytes of their outputs.
    pub bytes_after: u64,
    /// Registered files that do not exist.
    pub missing_files: Vec<String>,
    /// Files in the warehouse that no snapshot registers and that this run did not delete
    /// (younger than the leftover age, no lock, or a name no earthcatalog writer uses).
    pub unregistered_files: Vec<String>,
    /// Leftovers of earlier killed runs deleted now.
    pub leftovers_deleted: Vec<String>,
    /// Dry run: the leftovers a real run would delete.
    pub leftovers_to_delete: Vec<String>,
    /// Buckets left untouched because they failed.
    pub failed_buckets: Vec<BucketFailure>,
    /// Snapshot after the commit.
    pub snapshot_id: Option<i64>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Wall time.
    pub elapsed_secs: f64,
}

/// The optional lock around a maintenance run, taken only on an existing catalog (so a
/// mistyped catalog path creates nothing, not even a lock beside it).
async fn take_lock(
    wanted: bool,
    catalog: &str,
    explicit: &Option<String>,
    owner: &str,
    clock: Arc<dyn Clock>,
) -> Result<Option<RenewingLock>> {
    require_catalog(catalog).await?;
    crate::lock::acquire_for_catalog(
        wanted,
        catalog,
        explicit.as_deref(),
        LockOptions::new(owner),
        clock,
    )
    .await
}

/// Compact the warehouse: see the module docs.
pub async fn compact_warehouse(
    options: &CompactOptions,
    reporter: &dyn Reporter,
) -> Result<CompactMetrics> {
    compact_warehouse_with_clock(options, reporter, Arc::new(SystemClock)).await
}

/// [`compact_warehouse`] with an injected clock (lock expiry, leftover age).
pub async fn compact_warehouse_with_clock(
    options: &CompactOptions,
    reporter: &dyn Reporter,
    clock: Arc<dyn Clock>,
) -> Result<CompactMetrics> {
    let lock = take_lock(
        options.use_lock,
        &options.catalog,
        &options.lock_location,
        "compact",
        clock.clone(),
    )
    .await?;
    let result = compact_inner(options, reporter, lock.as_ref(), clock.as_ref()).await;
    crate::lock::release_after(lock, result).await
}

/// The error for a maintenance command on a catalog without the table: a refusal naming
/// `repair` when the warehouse already holds one (the catalog lost it), else `None`.
async fn lost_table(catalog: &Catalog, command: &str) -> Result<Option<Error>> {
    let Some(found) = existing_table_evidence(catalog.warehouse()).await? else {
        return Ok(None);
    };
    Ok(Some(Error::Refused {
        action: format!("{command} {}", catalog.warehouse().url()),
        reason: format!(
            "catalog {} has no table {}, but the warehouse holds {found}; rebuild the table \
             first: earthcatalog repair --catalog {} --warehouse {}",
            catalog.url(),
            catalog.ident(),
            catalog.url(),
            catalog.warehouse().url()
        ),
    }))
}

/// Whether an earthcatalog writer (ours or the Python tool) produces files named `name`:
/// only such files are ever deleted as leftovers.
fn written_by_earthcatalog(name: &str) -> bool {
    (name.starts_with("part_") || name.starts_with("compacted_")) && name.ends_with(".parquet")
}

/// Whether a file written at `written` is old enough at `now` to be a leftover.
fn old_enough(
    written: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    min_age: chrono::Duration,
) -> bool {
    now - written >= min_age
}

/// Every registered spelling of the canonical URLs registered under another one.
type Spellings = HashMap<String, Vec<String>>;

/// The files of one (cell, year) to merge.
#[derive(Clone)]
pub(crate) struct Bucket {
    /// The partition.
    pub(crate) key: PartitionValue,
    /// (url, sequence number, size, rows) of its files; the sequence number ranks versions
    /// for the dedup tie-break (higher = committed later).
    pub(crate) files: Vec<(String, i64, u64, u64)>,
}

async fn compact_inner(
    options: &CompactOptions,
    reporter: &dyn Reporter,
    lock: Option<&RenewingLock>,
    clock: &dyn Clock,
) -> Result<CompactMetrics> {
    let started = Instant::now();
    let mut metrics = CompactMetrics {
        dry_run: options.dry_run,
        ..Default::default()
    };
    let catalog =
        Catalog::open_with(&options.catalog, &options.warehouse, OpenMode::MustExist).await?;
    let warehouse = catalog.warehouse().clone();
    let Some(table) = catalog.load_table().await? else {
        if let Some(refusal) = lost_table(&catalog, "compact").await? {
            return Err(refusal);
        }
        metrics.elapsed_secs = started.elapsed().as_secs_f64();
        return Ok(metrics);
    };
    // Held per live file: its bucket entry (URL, sequence number, size, rows) and, while the
    // listing streams past, a set of the URLs not seen yet; of the listing only the files not
    // registered are kept; history is read only for those. At 100k live files the heap of this
    // phase peaked at 125 MB when the live list, the listing and the history were all held,
    // now 21 MB (heaptrack).
    let (buckets, spellings) = group_live_files(&table, &mut metrics).await?;
    let (unregistered, listed) = match_listing(&warehouse, &buckets, &mut metrics).await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        live = metrics.files_before,
        listed,
        "catalog and warehouse scanned"
    );
    let (leftovers, staging) = find_leftovers(
        &catalog,
        &table,
        unregistered,
        lock,
        clock,
        options,
        &mut metrics,
    )
    .await?;
    let candidates = choose_buckets(buckets, options.threshold, &warehouse, &mut metrics);
    reporter.phase("compact", Some(candidates.len() as u64));
    if options.dry_run {
        for b in &candidates {
            metrics.buckets_compacted += 1;
            metrics.rows_before += b.files.iter().map(|f| f.3).sum::<u64>();
            metrics.bytes_before += b.files.iter().map(|f| f.2).sum::<u64>();
        }
        metrics.files_after = metrics.files_before;
        metrics.rows_after = metrics.rows_before;
        metrics.bytes_after = metrics.bytes_before;
        metrics.leftovers_to_delete = leftovers;
        metrics
            .leftovers_to_delete
            .extend(staging.into_iter().map(|f| f.url));
        metrics.snapshot_id = table.metadata().current_snapshot_id();
        metrics.elapsed_secs = started.elapsed().as_secs_f64();
        reporter.finish_phase();
        return Ok(metrics);
    }
    let table = catalog.with_covering(table).await?;
    delete_all(&leftovers).await?;
    metrics.leftovers_deleted = leftovers;
    metrics
        .leftovers_deleted
        .extend(delete_staging(staging).await?);

    let ctx = MergeContext::of(
        &table,
        &warehouse,
        options.writer.clone(),
        options.max_rows_per_file,
    )
    .await?;
    let results: Vec<(Bucket, Result<MergedBucket>)> = merge_bounded(
        candidates,
        |b| b.files.len(),
        options.parallelism,
        |bucket| {
            let ctx = ctx.clone();
            async move {
                let r = merge_bucket(&bucket, &ctx, None).await;
                (bucket, r)
            }
        },
        || reporter.advance(1),
    )
    .await;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        buckets = results.len(),
        "buckets merged"
    );
    let table = commit_merged(
        &catalog,
        table,
        &spellings,
        results,
        lock,
        reporter,
        &mut metrics,
    )
    .await?;
    metrics.snapshot_id = table.metadata().current_snapshot_id();
    metrics.elapsed_secs = started.elapsed().as_secs_f64();
    reporter.finish_phase();
    Ok(metrics)
}

/// Group the live files by bucket (from their path, else their partition), streamed from the
/// manifests: each bucket's files once per canonical URL (a file registered twice is read
/// once, ranked by its later registration), in URL order. Also returns, for canonical URLs
/// registered under another spelling, every spelling registered (sorted; usually none): a
/// replace must remove all of them, or an entry would stay live for a deleted file.
async fn group_live_files(
    table: &iceberg::table::Table,
    metrics: &mut CompactMetrics,
) -> Result<(BTreeMap<PartitionValue, Bucket>, Spellings)> {
    let mut buckets: BTreeMap<PartitionValue, Bucket> = BTreeMap::new();
    let mut spellings: Spellings = HashMap::new();
    let mut files = 0u64;
    crate::catalog::live::for_each_live_file(table, |f| {
        files += 1;
        let url = canonical(&f.path);
        let key = crate::partition::partition_of_path(&url).unwrap_or_else(|| PartitionValue {
            cell: f.cell.unwrap_or_else(|| crate::grid::NONE_KEY.to_string()),
            year: f.year,
        });
        let entry = (url, f.sequence_number.unwrap_or(0), f.bytes, f.rows);
        if entry.0 != f.path {
            spellings.entry(entry.0.clone()).or_default().push(f.path);
        }
        match buckets.get_mut(&key) {
            Some(b) => b.files.push(entry),
            None => {
                let files = vec![entry];
                buckets.insert(key.clone(), Bucket { key, files });
            }
        }
    })
    .await?;
    // Entries per canonical URL registered more than once.
    let mut entries: HashMap<String, usize> = HashMap::new();
    for b in buckets.values_mut() {
        b.files.sort_by(|x, y| x.0.cmp(&y.0));
        b.files.dedup_by(|dup, kept| {
            let same = dup.0 == kept.0;
            if same {
                kept.1 = kept.1.max(dup.1);
                *entries.entry(kept.0.clone()).or_insert(1) += 1;
            }
            same
        });
    }
    // Registered as the canonical URL too when it has more entries than other spellings.
    for (url, n) in entries {
        if let Some(all) = spellings.get_mut(&url)
            && all.len() < n
        {
            all.push(url);
        }
    }
    for all in spellings.values_mut() {
        all.sort();
        all.dedup();
    }
    metrics.files_before = files;
    metrics.buckets_scanned = buckets.len() as u64;
    Ok((buckets, spellings))
}

/// Stream the warehouse listing past the live files: registered files it lacks go to
/// `metrics.missing_files` (sorted); the listed files that are not registered are returned
/// (sorted by URL) with the number of files listed. Only those are kept, not the listing.
async fn match_listing(
    warehouse: &Location,
    buckets: &BTreeMap<PartitionValue, Bucket>,
    metrics: &mut CompactMetrics,
) -> Result<(Vec<WarehouseFile>, usize)> {
    let mut unseen: std::collections::HashSet<&str> = buckets
        .values()
        .flat_map(|b| b.files.iter().map(|f| f.0.as_str()))
        .collect();
    let mut unregistered = Vec::new();
    let listed = scan::for_each_warehouse_file(warehouse, |f| {
        if !unseen.remove(f.url.as_str()) {
            unregistered.push(f);
        }
    })
    .await?;
    let mut missing: Vec<String> = unseen.into_iter().map(str::to_string).collect();
    missing.sort();
    metrics.missing_files.extend(missing);
    unregistered.sort_by(|a, b| a.url.cmp(&b.url));
    Ok((unregistered, listed))
}

/// Leftovers of killed runs (module docs): replaced-but-not-deleted files (in history)
/// always; never-committed files and staging files only under the lock and once older than
/// the age guard. Others are reported as unregistered.
#[allow(clippy::too_many_arguments)]
async fn find_leftovers(
    catalog: &Catalog,
    table: &iceberg::table::Table,
    unregistered: Vec<WarehouseFile>,
    lock: Option<&RenewingLock>,
    clock: &dyn Clock,
    options: &CompactOptions,
    metrics: &mut CompactMetrics,
) -> Result<(Vec<String>, Vec<scan::StagingFile>)> {
    // History is read only to place files not registered (usually none), and keeps only theirs.
    let history: std::collections::HashSet<String> = if unregistered.is_empty() {
        Default::default()
    } else {
        let wanted: std::collections::HashSet<&str> =
            unregistered.iter().map(|f| f.url.as_str()).collect();
        catalog
            .historical_paths(table, &|p| wanted.contains(canonical(p).as_str()))
            .await?
            .into_iter()
            .map(|p| canonical(&p))
            .collect()
    };
    let now = clock.now();
    let deletable = |name: &str, written| {
        lock.is_some()
            && written_by_earthcatalog(name)
            && old_enough(written, now, options.leftover_min_age)
    };
    let mut leftovers = Vec::new();
    for f in unregistered {
        if history.contains(&f.url) || deletable(&f.name, f.last_modified) {
            leftovers.push(f.url);
        } else {
            metrics.unregistered_files.push(f.url);
        }
    }
    let mut staging = Vec::new();
    for f in list_staging(catalog.warehouse()).await? {
        let ok = lock.is_some() && old_enough(f.last_modified, now, options.leftover_min_age);
        if ok {
            staging.push(f);
        } else {
            metrics.unregistered_files.push(f.url);
        }
    }
    Ok((leftovers, staging))
}

/// The buckets with at least `threshold` files. A bucket with a registered file that is not
/// in the warehouse listing is left alone: the file is missing (run `repair`) or lives outside
/// `--warehouse` (e.g. a copied catalog.db pointed at another warehouse), and compacting would
/// delete objects this run does not own.
fn choose_buckets(
    buckets: BTreeMap<PartitionValue, Bucket>,
    threshold: usize,
    warehouse: &Location,
    metrics: &mut CompactMetrics,
) -> Vec<Bucket> {
    let missing: std::collections::HashSet<&str> =
        metrics.missing_files.iter().map(String::as_str).collect();
    let mut candidates = Vec::new();
    let mut skipped = Vec::new();
    for b in buckets.into_values() {
        if b.files.len() < threshold.max(1) {
            continue;
        }
        match b.files.iter().find(|f| missing.contains(f.0.as_str())) {
            Some(f) => skipped.push(BucketFailure {
                bucket: b.key.dir(),
                reason: format!(
                    "registered file {} is not in the warehouse {} (missing, or the catalog \
                     belongs to another warehouse); bucket left untouched, run `repair`",
                    f.0,
                    warehouse.url()
                ),
            }),
            None => candidates.push(b),
        }
    }
    metrics.failed_buckets.extend(skipped);
    candidates
}

/// Replace the merged buckets' files by their outputs in one commit, upload the catalog, then
/// delete the replaced files. Buckets that failed are reported and left untouched.
async fn commit_merged(
    catalog: &Catalog,
    table: iceberg::table::Table,
    spellings: &Spellings,
    results: Vec<(Bucket, Result<MergedBucket>)>,
    lock: Option<&RenewingLock>,
    reporter: &dyn Reporter,
    metrics: &mut CompactMetrics,
) -> Result<iceberg::table::Table> {
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for (bucket, result) in results {
        match result {
            Ok(m) => {
                metrics.buckets_compacted += 1;
                metrics.rows_before += m.rows_before;
                metrics.rows_after += m.rows_after;
                metrics.duplicates_removed += m.rows_before - m.rows_after;
                metrics.bytes_before += bucket.files.iter().map(|f| f.2).sum::<u64>();
                metrics.bytes_after += m.bytes;
                removed.extend(bucket.files.into_iter().map(|f| f.0));
                added.extend(m.files);
            }
            Err(e) => metrics.failed_buckets.push(BucketFailure {
                bucket: bucket.key.dir(),
                reason: e.to_string(),
            }),
        }
    }
    if removed.is_empty() {
        metrics.files_after = metrics.files_before;
        return Ok(table);
    }
    if let Some(lock) = lock {
        lock.verify().await?;
    }
    reporter.message(&format!(
        "committing: -{} +{} files",
        removed.len(),
        added.len()
    ));
    let added_count = added.len() as u64;
    // Registered paths may be spelled differently from their canonical URLs.
    let respelled: Vec<String>;
    let removed_as_registered = if spellings.is_empty() {
        &removed
    } else {
        respelled = removed
            .iter()
            .flat_map(|u| match spellings.get(u) {
                Some(all) => all.clone(),
                None => vec![u.clone()],
            })
            .collect();
        &respelled
    };
    let props = HashMap::from([("earthcatalog.operation".to_string(), "compact".to_string())]);
    let table = catalog
        .replace_files(
            &table,
            removed_as_registered,
            added.into_iter().map(|a| a.0).collect(),
            props,
        )
        .await?;
    tracing::info!("replace committed");
    catalog.upload().await?;
    crate::fault::check("compact.before_delete")?;
    delete_all(&removed).await?;
    let entries_removed = removed_as_registered.len() as u64;
    metrics.files_after = metrics.files_before.saturating_sub(entries_removed) + added_count;
    Ok(table)
}

/// What a bucket merge wrote.
pub(crate) struct MergedBucket {
    /// The catalog entries of the written files, with their sizes.
    pub(crate) files: Vec<(iceberg::spec::DataFile, u64)>,
    /// Rows read.
    pub(crate) rows_before: u64,
    /// Rows written (after dedup).
    pub(crate) rows_after: u64,
    /// Bytes written.
    pub(crate) bytes: u64,
    /// Digests of the ids written (one per kept row).
    pub(crate) ids: Vec<crate::hash_index::IdHash>,
}

/// What every bucket merge of one run shares: where files go and how they are encoded.
#[derive(Clone)]
pub(crate) struct MergeContext {
    warehouse: Location,
    placement: Arc<Placement>,
    columns: Arc<Columns>,
    table_cols: Arc<Vec<crate::schema::TableColumn>>,
    schema: iceberg::spec::SchemaRef,
    spec_id: i32,
    writer: WriterOptions,
    max_rows: Option<usize>,
    /// Outputs are named `<prefix>_<8 hex>.parquet`.
    prefix: String,
    /// Split outputs at about this many bytes (estimated from the inputs' bytes per row).
    target_bytes: Option<u64>,
}

impl MergeContext {
    /// A context from its parts: outputs go to `warehouse` placed by `placement`, encoded with
    /// the columns `table_cols` (field ids included) of `schema`.
    pub(crate) fn new(
        warehouse: &Location,
        placement: Placement,
        table_cols: Vec<crate::schema::TableColumn>,
        schema: iceberg::spec::SchemaRef,
        spec_id: i32,
        writer: WriterOptions,
        max_rows: Option<usize>,
    ) -> Self {
        Self {
            warehouse: warehouse.clone(),
            placement: Arc::new(placement),
            columns: Arc::new(Columns::new(&table_cols)),
            table_cols: Arc::new(table_cols),
            schema,
            spec_id,
            writer,
            max_rows,
            prefix: "compacted".to_string(),
            target_bytes: None,
        }
    }

    /// Name outputs `<prefix>_<8 hex>.parquet` and split them at about `target_bytes`.
    pub(crate) fn with_output(mut self, prefix: &str, target_bytes: Option<u64>) -> Self {
        self.prefix = prefix.to_string();
        self.target_bytes = target_bytes;
        self
    }

    /// The most rows an output of `bucket` may hold: `max_rows`, and the target size divided
    /// by the inputs' bytes per row.
    fn rows_per_file(&self, bucket: &Bucket) -> Option<usize> {
        let by_size = self.target_bytes.and_then(|target| {
            let bytes: u64 = bucket.files.iter().map(|f| f.2).sum();
            let rows: u64 = bucket.files.iter().map(|f| f.3).sum();
            (bytes > 0 && rows > 0).then(|| {
                let per_row = (bytes as f64 / rows as f64).max(1.0);
                ((target as f64 / per_row) as usize).max(1)
            })
        });
        match (self.max_rows, by_size) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The context of `table` in `warehouse` (its layout and grid place the outputs).
    pub(crate) async fn of(
        table: &iceberg::table::Table,
        warehouse: &Location,
        writer: WriterOptions,
        max_rows: Option<usize>,
    ) -> Result<Self> {
        let md = table.metadata();
        let grid = crate::catalog::grid_from_properties(md.properties())?;
        let layout = crate::catalog::table_layout(table).await?;
        Ok(Self::new(
            warehouse,
            Placement::new(layout, &grid),
            table_columns(md.current_schema()),
            md.current_schema().clone(),
            md.default_partition_spec_id(),
            writer,
            max_rows,
        ))
    }
}

/// Input files the bucket merges in flight may hold together (one bucket is always let in,
/// however large): a merge holds its inputs' bytes and their decoded columns, so memory
/// follows these files, not only the number of buckets. At ~100k live files (buckets of up to
/// 579 files) peak RSS 143 -> 125 MB, wall time unchanged; no effect on small buckets.
pub(crate) const MERGE_FILES_IN_FLIGHT: usize = 256;

/// Run `merge` over `jobs` with at most `parallelism` in flight and, beyond the first, at most
/// [`MERGE_FILES_IN_FLIGHT`] input files (`files_of`) among them; `done` is called as each
/// finishes. Results come in completion order.
pub(crate) async fn merge_bounded<T, Fut: std::future::Future>(
    jobs: Vec<T>,
    files_of: impl Fn(&T) -> usize,
    parallelism: usize,
    mut merge: impl FnMut(T) -> Fut,
    mut done: impl FnMut(),
) -> Vec<Fut::Output> {
    let mut pending = jobs.into_iter().peekable();
    let mut running = futures::stream::FuturesUnordered::new();
    let (mut files, mut out) = (0usize, Vec::new());
    loop {
        while let Some(job) = pending.peek() {
            let n = files_of(job);
            let full = running.len() >= parallelism.max(1)
                || (!running.is_empty() && files + n > MERGE_FILES_IN_FLIGHT);
            if full {
                break;
            }
            if let Some(job) = pending.next() {
                files += n;
                let fut = merge(job);
                running.push(async move { (n, fut.await) });
            }
        }
        let Some((n, result)) = running.next().await else {
            return out;
        };
        files -= n;
        done();
        out.push(result);
    }
}

/// Merge a bucket's files into new files (dedup by the version rule, sort, split at
/// `max_rows`), dropping the rows whose id digest is in `exclude`; write them and build their
/// catalog entries. Nothing is committed or deleted here.
pub(crate) async fn merge_bucket(
    bucket: &Bucket,
    ctx: &MergeContext,
    exclude: Option<Arc<std::collections::HashSet<crate::hash_index::IdHash>>>,
) -> Result<MergedBucket> {
    let local = ctx.warehouse.is_local()
        && (bucket.files.iter()).all(|(url, ..)| crate::store::is_local(url));
    if local {
        // Reads, the merge and writes on a thread outside the runtime: local file I/O in place
        // instead of a blocking-pool round trip per call (`store::off_runtime`).
        let (bucket, ctx) = (bucket.clone(), ctx.clone());
        let context = format!("merging {}", bucket.key.dir());
        return crate::store::off_runtime(context, move || {
            futures::executor::block_on(merge_bucket_on(&bucket, &ctx, exclude, Cpu::Here))
        })
        .await;
    }
    merge_bucket_on(bucket, ctx, exclude, Cpu::BlockingPool).await
}

/// Where a merge's decoding and encoding run.
#[derive(Clone, Copy)]
enum Cpu {
    /// On the calling thread (one outside the runtime).
    Here,
    /// On tokio's blocking pool (the caller is a runtime task).
    BlockingPool,
}

async fn merge_bucket_on(
    bucket: &Bucket,
    ctx: &MergeContext,
    exclude: Option<Arc<std::collections::HashSet<crate::hash_index::IdHash>>>,
    cpu: Cpu,
) -> Result<MergedBucket> {
    let warehouse = &ctx.warehouse;
    let (columns, table_cols) = (ctx.columns.clone(), ctx.table_cols.clone());
    let (schema, spec_id) = (&ctx.schema, ctx.spec_id);
    let (writer, max_rows) = (ctx.writer.clone(), ctx.rows_per_file(bucket));
    let placement = ctx.placement.clone();
    let prefix = ctx.prefix.clone();
    // Read every file (oldest committed first) with its rank for the dedup tie-break.
    let mut ordered = bucket.files.clone();
    ordered.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    let sized = ordered.iter().map(|f| (f.0.as_str(), f.2));
    let bytes = crate::store::get_all(sized, crate::store::MERGE_READS_IN_FLIGHT).await?;
    let inputs: Vec<(usize, String, bytes::Bytes)> = ordered
        .into_iter()
        .zip(bytes)
        .enumerate()
        .map(|(rank, ((url, ..), bytes))| (rank, url, bytes))
        .collect();
    crate::fault::check("compact.merge")?;
    let key = bucket.key.clone();
    let work = move || -> Result<_> {
        let name_of = || {
            format!(
                "{}/{prefix}_{:08x}.parquet",
                placement.dir(&key),
                uuid::Uuid::new_v4().as_u128() as u32
            )
        };
        let exclude = exclude.as_deref();
        match columnar::merge(
            &inputs,
            &table_cols,
            &key.cell,
            &writer,
            max_rows,
            exclude,
            name_of,
        ) {
            Ok(m) => return Ok((m.files, m.rows_before, m.rows_after, m.ids)),
            Err(why) => tracing::debug!(bucket = %key.dir(), %why, "row-wise merge"),
        }
        let mut rows: Vec<(usize, ItemRow)> = Vec::new();
        for (rank, url, bytes) in inputs {
            for row in crate::geoparquet::read::read_file_rows(bytes, &columns, &url)? {
                if exclude.is_some_and(|x| x.contains(&crate::hash_index::hash_id(&row.id))) {
                    continue;
                }
                rows.push((rank, row));
            }
        }
        let rows_before = rows.len() as u64;
        let has_overflow_column = table_cols.iter().any(|c| c.name == OVERFLOW_COLUMN);
        if !has_overflow_column && rows.iter().any(|(_, r)| r.overflow.is_some()) {
            return Err(Error::Refused {
                action: format!("merge {}", key.dir()),
                reason: format!(
                    "it holds values outside the table schema and the table has no \
                     {OVERFLOW_COLUMN} column to keep them in; bucket left untouched"
                ),
            });
        }
        let kept = dedup(rows);
        let rows_after = kept.len() as u64;
        let ids = kept
            .iter()
            .map(|r| crate::hash_index::hash_id(&r.id))
            .collect();
        let mut refs: Vec<&ItemRow> = kept.iter().collect();
        sort_rows(&mut refs);
        let chunk = max_rows.unwrap_or(usize::MAX).max(1);
        let mut files = Vec::new();
        for part in refs.chunks(chunk) {
            let rel = name_of();
            let file = encode_group(part, &key.cell, &columns, &table_cols, &writer, &rel)?;
            files.push((rel, file));
        }
        Ok((files, rows_before, rows_after, ids))
    };
    let (files, rows_before, rows_after, ids) = match cpu {
        Cpu::Here => work()?,
        Cpu::BlockingPool => tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::task(format!("merging {}", bucket.key.dir()), e))??,
    };
    let mut out = Vec::new();
    let mut bytes_total = 0;
    for (rel, file) in files {
        let size = file.bytes.len() as u64;
        let path = warehouse.key(&rel);
        if !put_if_absent(warehouse.store().as_ref(), &path, file.bytes.into()).await? {
            return Err(Error::Inconsistent(format!(
                "compacted file {} already exists; new files get unique names, so another \
                 writer used the same name",
                warehouse.url_of(&rel)
            )));
        }
        let df = data_file_from_footer(
            schema,
            spec_id,
            &file.metadata,
            &warehouse.url_of(&rel),
            size,
            &bucket.key,
        )?;
        bytes_total += size;
        out.push((df, size));
    }
    crate::fault::check("compact.after_write")?;
    Ok(MergedBucket {
        files: out,
        rows_before,
        rows_after,
        bytes: bytes_total,
        ids,
    })
}

/// Keep, per id, the newest row by [`Version`] (`rank`: the file's commit order, higher =
/// later; first occurrence on ties). Rows without an id are all kept.
pub fn dedup(rows: Vec<(usize, ItemRow)>) -> Vec<ItemRow> {
    let version = |rank: usize, row: &ItemRow| Version::new(row.updated, row.created, rank as u64);
    let mut best: HashMap<String, (usize, ItemRow)> = HashMap::with_capacity(rows.len());
    let mut anonymous = Vec::new();
    for (rank, row) in rows {
        if row.id.is_empty() {
            anonymous.push(row);
            continue;
        }
        match best.get(&row.id) {
            Some((r, cur)) if version(*r, cur) >= version(rank, &row) => {}
            _ => {
                best.insert(row.id.clone(), (rank, row));
            }
        }
    }
    let mut out: Vec<ItemRow> = best.into_values().map(|(_, r)| r).collect();
    out.extend(anonymous);
    out
}

/// Canonical URL of a registered path (plain paths become `file://` URLs).
pub fn canonical(path: &str) -> String {
    Location::parse(path)
        .map(|l| l.url().to_string())
        .unwrap_or_else(|_| path.to_string())
}

/// Objects deleted concurrently.
const DELETE_CONCURRENCY: usize = 16;

/// Delete the objects at `urls` (missing ones are fine); local files on a thread outside the
/// runtime (`store::off_runtime`).
pub(crate) async fn delete_all(urls: &[String]) -> Result<()> {
    if !urls.is_empty() && urls.iter().all(|u| crate::store::is_local(u)) {
        let urls = urls.to_vec();
        let context = format!("deleting {} files", urls.len());
        return crate::store::off_runtime(context, move || {
            futures::executor::block_on(delete_each(&urls))
        })
        .await;
    }
    delete_each(urls).await
}

async fn delete_each(urls: &[String]) -> Result<()> {
    futures::stream::iter(urls)
        .map(|u| delete_url(u))
        .buffer_unordered(DELETE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Delete local staging files (see [`scan::list_staging`] for why not through object_store);
/// returns their URLs.
async fn delete_staging(files: Vec<scan::StagingFile>) -> Result<Vec<String>> {
    tokio::task::spawn_blocking(move || {
        let mut done = Vec::with_capacity(files.len());
        for f in files {
            match std::fs::remove_file(&f.path) {
                Ok(()) => done.push(f.url),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&f.path, e)),
            }
        }
        Ok(done)
    })
    .await
    .map_err(|e| Error::task("deleting staging files", e))?
}

async fn delete_url(url: &str) -> Result<()> {
    let loc = Location::parse(url)?;
    match loc.store().delete(loc.prefix()).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::store(url, e)),
    }
}

/// Options of a repair.
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Warehouse root.
    pub warehouse: String,
    /// `catalog.db` location.
    pub catalog: String,
    /// Take the catalog lock.
    pub use_lock: bool,
    /// Lock object; default `.lock` beside the catalog.
    pub lock_location: Option<String>,
    /// Report only.
    pub dry_run: bool,
    /// H3 resolution of a table rebuilt from a warehouse whose table metadata is gone; with
    /// metadata the recorded grid is used (a different resolution is an error).
    pub resolution: Option<u8>,
}

/// What a repair did (or would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepairMetrics {
    /// Registered files that did not exist (removed from the table).
    pub removed: Vec<String>,
    /// Unregistered files found in the warehouse (added to the table).
    pub added: Vec<String>,
    /// Files that could not be registered (unreadable footer, bad path).
    pub skipped: Vec<BucketFailure>,
    /// The table was rebuilt because the catalog had none (see [`RebuiltTable`]).
    pub rebuilt: Option<RebuiltTable>,
    /// Snapshot after the commit.
    pub snapshot_id: Option<i64>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// How `repair` rebuilt a table the catalog had lost.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RebuiltTable {
    /// The grid, e.g. `h3:2`.
    pub grid: String,
    /// Where the grid, schema and properties came from: the newest table metadata file, or
    /// `--resolution`.
    pub source: String,
    /// Columns beyond the 28 base columns.
    pub extra_columns: Vec<String>,
    /// The metadata file the catalog now points at (none on a dry run).
    pub metadata_location: Option<String>,
}

/// Rebuild the table's file list from what exists in the warehouse, in one commit. When the
/// catalog has no table but the warehouse holds one (a truncated or replaced `catalog.db`),
/// the table is rebuilt: created with the grid, schema and properties of the newest table
/// metadata file (or, without one, the H3 grid of [`RepairOptions::resolution`]), with every
/// data file registered from its footer in one commit.
pub async fn repair(options: &RepairOptions) -> Result<RepairMetrics> {
    let lock = take_lock(
        options.use_lock,
        &options.catalog,
        &options.lock_location,
        "repair",
        Arc::new(SystemClock),
    )
    .await?;
    let result = repair_inner(options, lock.as_ref()).await;
    crate::lock::release_after(lock, result).await
}

async fn repair_inner(
    options: &RepairOptions,
    lock: Option<&RenewingLock>,
) -> Result<RepairMetrics> {
    let catalog =
        Catalog::open_with(&options.catalog, &options.warehouse, OpenMode::MustExist).await?;
    let warehouse = catalog.warehouse().clone();
    let Some(table) = catalog.load_table().await? else {
        if existing_table_evidence(&warehouse).await?.is_none() {
            return Err(Error::NotFound {
                what: format!("table {} in catalog", catalog.ident()),
                location: options.catalog.clone(),
                hint: format!(
                    " and the warehouse {} holds no table to rebuild; run an ingest first",
                    warehouse.url()
                ),
            });
        }
        return rebuild::rebuild(&catalog, options, lock).await;
    };
    let live = crate::catalog::live::scan(&table, &crate::catalog::prune::Pruner::default())
        .await?
        .files;
    let listing = list_warehouse(&warehouse).await?;
    let on_disk: std::collections::HashSet<&str> = listing.iter().map(|f| f.url.as_str()).collect();
    let live_canon: std::collections::HashSet<String> =
        live.iter().map(|f| canonical(&f.path)).collect();
    let mut metrics = RepairMetrics {
        dry_run: options.dry_run,
        ..Default::default()
    };
    for f in &live {
        if !on_disk.contains(canonical(&f.path).as_str()) {
            metrics.removed.push(f.path.clone());
        }
    }
    if !live.is_empty() && metrics.removed.len() == live.len() {
        return Err(Error::Refused {
            action: "empty the table".into(),
            reason: format!(
                "none of the {} registered files exists under {} (wrong --warehouse?)",
                live.len(),
                warehouse.url()
            ),
        });
    }
    let unregistered: Vec<&WarehouseFile> = listing
        .iter()
        .filter(|f| !live_canon.contains(&f.url))
        .collect();
    let schema = table.metadata().current_schema().clone();
    let spec_id = table.metadata().default_partition_spec_id();
    let footers: Vec<(String, Result<iceberg::spec::DataFile>)> =
        futures::stream::iter(unregistered.into_iter().cloned())
            .map(|f| {
                let schema = schema.clone();
                async move {
                    let r = async {
                        let loc = Location::parse(&f.url)?;
                        let meta = scan::read_footer(&loc, f.size).await?;
                        data_file_from_footer(&schema, spec_id, &meta, &f.url, f.size, &f.partition)
                    }
                    .await;
                    (f.url.clone(), r)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
    let mut added = Vec::new();
    for (url, r) in footers {
        match r {
            Ok(df) => {
                metrics.added.push(url);
                added.push(df);
            }
            Err(e) => metrics.skipped.push(BucketFailure {
                bucket: url,
                reason: e.to_string(),
            }),
        }
    }
    metrics.removed.sort();
    metrics.added.sort();
    if options.dry_run || (metrics.removed.is_empty() && added.is_empty()) {
        metrics.snapshot_id = table.metadata().current_snapshot_id();
        return Ok(metrics);
    }
    if let Some(lock) = lock {
        lock.verify().await?;
    }
    let props = HashMap::from([("earthcatalog.operation".to_string(), "repair".to_string())]);
    let table = catalog
        .replace_files(&table, &metrics.removed, added, props)
        .await?;
    catalog.upload().await?;
    metrics.snapshot_id = table.metadata().current_snapshot_id();
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bucket_merges_in_flight_keep_to_the_job_and_file_limits() {
        use std::sync::Mutex;
        // (jobs, files) in flight now and at most; every job yields a few times so others run.
        let state = Arc::new(Mutex::new((0usize, 0usize, 0usize, 0usize)));
        let sizes = vec![300, 10, 10, 10, 200, 100, 50, 20, 20, 20, 20, 20, 256, 1, 1];
        let mut done = 0;
        let out = merge_bounded(
            sizes.clone(),
            |n| *n,
            4,
            |n| {
                let state = state.clone();
                async move {
                    {
                        let mut s = state.lock().unwrap();
                        s.0 += 1;
                        s.1 += n;
                        s.2 = s.2.max(s.0);
                        if s.0 > 1 {
                            s.3 = s.3.max(s.1);
                        }
                    }
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                    let mut s = state.lock().unwrap();
                    s.0 -= 1;
                    s.1 -= n;
                    n
                }
            },
            || done += 1,
        )
        .await;
        let (_, _, most_jobs, most_files_shared) = *state.lock().unwrap();
        let mut got = out;
        got.sort_unstable();
        let mut want = sizes;
        want.sort_unstable();
        assert_eq!(got, want, "every job runs once");
        assert_eq!(done, 15);
        assert_eq!(
            most_jobs, 4,
            "small jobs run side by side, up to the parallelism"
        );
        assert!(
            most_files_shared <= MERGE_FILES_IN_FLIGHT,
            "jobs sharing the budget held {most_files_shared} files"
        );
    }

    #[test]
    fn outputs_split_at_the_target_size_by_the_inputs_bytes_per_row() {
        let ctx = MergeContext::new(
            &Location::parse("memory://merge-ctx/wh").unwrap(),
            Placement::default(),
            Vec::new(),
            Arc::new(crate::schema::base_schema().unwrap()),
            0,
            WriterOptions::default(),
            None,
        );
        // Two inputs: 3000 bytes for 30 rows, 100 bytes per row.
        let bucket = Bucket {
            key: PartitionValue {
                cell: "c".into(),
                year: None,
            },
            files: vec![("a".into(), 1, 1000, 10), ("b".into(), 2, 2000, 20)],
        };
        assert_eq!(ctx.rows_per_file(&bucket), None, "compaction: no split");
        let sized = ctx.clone().with_output("backfill_x", Some(1000));
        assert_eq!(sized.rows_per_file(&bucket), Some(10));
        assert_eq!(
            sized
                .clone()
                .with_output("b", Some(1))
                .rows_per_file(&bucket),
            Some(1)
        );
        let capped = MergeContext {
            max_rows: Some(4),
            ..sized.clone()
        };
        assert_eq!(capped.rows_per_file(&bucket), Some(4));
        let empty = Bucket {
            key: bucket.key.clone(),
            files: vec![("a".into(), 1, 0, 0)],
        };
        assert_eq!(sized.rows_per_file(&empty), None);
    }

    #[test]
    fn only_files_our_writers_name_are_leftovers() {
        for name in [
            "part_000003_0a1b2c3d.parquet",
            "part_000003.parquet",
            "compacted_0a1b2c3d.parquet",
        ] {
            assert!(written_by_earthcatalog(name), "{name}");
        }
        for name in [
            "mine.parquet",
            "part_000003_0a1b2c3d.parquet.tmp",
            "compacted.txt",
        ] {
            assert!(!written_by_earthcatalog(name), "{name}");
        }
    }

    #[test]
    fn leftover_age_is_measured_against_the_clock() {
        let written = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let six = chrono::Duration::hours(6);
        assert!(!old_enough(
            written,
            written + chrono::Duration::minutes(359),
            six
        ));
        assert!(old_enough(written, written + six, six));
        assert!(old_enough(written, written, chrono::Duration::zero()));
        // A file from the future (clock skew) is never old enough.
        assert!(!old_enough(
            written,
            written - chrono::Duration::hours(1),
            six
        ));
    }
}
