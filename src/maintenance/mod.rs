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

pub mod gc;
mod rebuild;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use crate::catalog::datafile::data_file_from_footer;
use crate::catalog::{Catalog, OpenMode, existing_table_evidence, require_catalog};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::geoparquet::WriterOptions;
use crate::lock::{LockOptions, RenewingLock};
use crate::partition::PartitionValue;
use crate::report::Reporter;
pub use crate::rewrite::scan;
use crate::rewrite::{Bucket, MergeContext, MergedBucket, delete_all, merge_bounded, merge_bucket};
pub use crate::rewrite::{canonical, dedup};
use crate::store::Location;
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
