//! The ingest pipeline: inventory → fetch → parse → partition → GeoParquet → Iceberg commit.
//!
//! ```text
//! read_inventory ──▶ fetch (buffer_unordered(concurrency), retries)
//!                ──▶ parse + cells (spawn_blocking) ──▶ Groups (cell × UTC year, one chunk)
//!                ──▶ encode files (2 CPU workers) ──▶ create-only PUTs
//!                ──▶ Iceberg append (every `commit_every` chunks, or once at the end)
//!                ──▶ upload catalog.db (remote catalogs) ──▶ hash index merge
//! ```
//!
//! Memory is bounded by one chunk (`chunk_items` items or `chunk_bytes`, whichever comes first),
//! not by the inventory. Every item that is not ingested is counted by reason and listed in a
//! failures report (bucket, key, reason), and so is every malformed inventory row: its bucket
//! is empty, its key locates the row (`<inventory file>#line=<n>` for CSV, 1-based;
//! `<inventory file>#row=<i>` for Parquet, 0-based) and its reason starts `inventory: malformed
//! row:`. A crash leaves the catalog at its last commit; the
//! data files of an interrupted chunk stay unregistered and are never overwritten.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use iceberg::table::Table;

use crate::catalog::datafile::data_file_from_footer;
use crate::catalog::{Catalog, OpenMode, grid_from_properties};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::fetch::{FetchError, FetchOptions, Fetcher};
use crate::geoparquet::{EncodedFile, WriterOptions, encode_group, sort_rows};
use crate::grid::{GridConfig, Partitioner};
use crate::hash_index::{self, IdHash, KnownIds, key_item_id};
use crate::inventory::{
    InventoryEntry, InventoryOptions, InventoryRecord, InventoryStats, MalformedRow, read_inventory,
};
use crate::item::{Columns, ItemError, ItemRow, ParseCounters, parse_item};
use crate::lock::{LockOptions, RenewingLock};
use crate::partition::Groups;
use crate::partition::{Layout, PartitionValue, Placement};
use crate::report::Reporter;
use crate::schema::{OVERFLOW_COLUMN, PROP_HASH_INDEX, table_columns};
use crate::store::{Location, put_if_absent};

/// Commit early once this many ingested ids wait for the hash index (16 bytes each).
const MAX_PENDING_IDS: usize = 2_000_000;

/// Which inventory keys an ingest fetches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestMode {
    /// Skip keys whose id (the key's basename minus the suffix) the hash index holds, before
    /// fetching (the default whenever the hash index is used).
    #[default]
    New,
    /// Fetch every listed key (e.g. the changed keys of a `diff`).
    All,
}

/// Sample size of the ids whose key basename differs from the fetched id.
const MISMATCH_SAMPLE: usize = 10;

/// Everything an ingest run needs.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Inventory location (CSV, CSV.gz, Parquet or manifest.json).
    pub inventory: String,
    /// Warehouse root.
    pub warehouse: String,
    /// `catalog.db` location.
    pub catalog: String,
    /// Grid for a new table; must match an existing table's grid. `None`: the table's, else H3 res 1.
    pub grid: Option<GridConfig>,
    /// Warehouse layout for a new table; must match an existing table's. `None`: the table's,
    /// else `grid_partition`.
    pub layout: Option<Layout>,
    /// Hash index location; default: the table property, else `<warehouse>_id_hashes.parquet`.
    pub hash_index: Option<String>,
    /// Use the hash index: reconcile it with the catalog first, skip known ids (mode `New`),
    /// and add the ingested ids after each commit.
    pub update_hash_index: bool,
    /// Which keys to fetch.
    pub mode: IngestMode,
    /// Inventory filters.
    pub inventory_options: InventoryOptions,
    /// Fetch settings.
    pub fetch: FetchOptions,
    /// Items fetched concurrently.
    pub concurrency: usize,
    /// Items per chunk (one file per group per chunk).
    pub chunk_items: usize,
    /// Approximate bytes per chunk before it is flushed early.
    pub chunk_bytes: usize,
    /// Commit after this many chunks; `None`: one commit at the end.
    pub commit_every: Option<usize>,
    /// Commit early once this many data files are pending, so memory stays bounded on huge
    /// runs (each pending catalog entry holds a few KB of statistics).
    pub max_files_per_commit: usize,
    /// Take the catalog lock.
    pub lock: bool,
    /// Lock object; default `.lock` beside the catalog.
    pub lock_location: Option<String>,
    /// Lock owner string.
    pub owner: String,
    /// Lock TTL in hours, fractions allowed (default 0.25: 15 minutes, renewed every 3).
    pub lock_ttl_hours: f64,
    /// Where summary and failures reports go; default `<warehouse>/_reports`.
    pub report_dir: Option<String>,
    /// File writer settings.
    pub writer: WriterOptions,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            inventory: String::new(),
            warehouse: String::new(),
            catalog: String::new(),
            grid: None,
            layout: None,
            hash_index: None,
            update_hash_index: true,
            mode: IngestMode::New,
            inventory_options: InventoryOptions::default(),
            fetch: FetchOptions::default(),
            concurrency: 256,
            chunk_items: 50_000,
            chunk_bytes: 192 * 1024 * 1024,
            commit_every: None,
            max_files_per_commit: 5_000,
            lock: true,
            lock_location: None,
            owner: "earthcatalog-ingest".to_string(),
            lock_ttl_hours: crate::lock::DEFAULT_TTL_HOURS,
            report_dir: None,
            writer: WriterOptions::default(),
        }
    }
}

/// What an ingest run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestMetrics {
    /// Run id (also in file and report names).
    pub run_id: String,
    /// Grid used, e.g. `h3:1`.
    pub grid: String,
    /// Inventory counters (rows, kept, skipped, fail-open).
    pub inventory: InventoryStats,
    /// Items fetched successfully.
    pub fetched: u64,
    /// Inventory rows not ingested: fetch or parse failures and malformed inventory rows.
    pub failed: u64,
    /// Failures by reason.
    pub failures_by_reason: BTreeMap<String, u64>,
    /// Items written.
    pub items: u64,
    /// Rows written (after fan-out).
    pub rows: u64,
    /// Data files written.
    pub files: u64,
    /// Bytes written in data files.
    pub bytes: u64,
    /// Distinct cells written.
    pub cells: u64,
    /// Distinct years written (`null` for unknown).
    pub years: Vec<Option<i32>>,
    /// Columns added to the table schema.
    pub schema_columns_added: Vec<String>,
    /// Parse-time conversions (date-only/naive datetimes, overflow values, null geometries).
    pub parse: ParseCounters,
    /// Iceberg commits made.
    pub commits: u64,
    /// Current snapshot after the run.
    pub snapshot_id: Option<i64>,
    /// Hash index: ids added and total, when updated.
    pub hash_index_added: Option<u64>,
    /// Hash index total rows after the update.
    pub hash_index_total: Option<u64>,
    /// Hash index location.
    pub hash_index_path: String,
    /// Which keys were fetched (`new` skips ids the index holds).
    pub mode: IngestMode,
    /// Inventory keys not fetched because the hash index holds their id.
    pub skipped_known: u64,
    /// What bringing the hash index up to the catalog took, when it is used.
    pub index_reconciled: Option<hash_index::Reconciled>,
    /// Items whose `id` differs from their key's basename (indexed by their `id`).
    pub id_mismatch: u64,
    /// Up to ten (key, id) pairs of such items.
    pub id_mismatch_sample: Vec<(String, String)>,
    /// Non-fatal warnings (e.g. a hash index update that failed after a commit).
    pub warnings: Vec<String>,
    /// The error that stopped the run, if any (earlier commits stay; see `commits`).
    pub error: Option<String>,
    /// Failures report URL, if any item failed.
    pub failures_report: Option<String>,
    /// Summary report URL.
    pub summary_report: Option<String>,
    /// Wall time.
    pub elapsed_secs: f64,
    /// Items fetched per second.
    pub items_per_sec: f64,
}

/// Why an inventory row was not ingested: carried from the stage that failed to the failures
/// report and the summary's per-kind counts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FailureReason {
    /// The item body could not be fetched.
    #[error("fetch: {0}")]
    Fetch(#[from] FetchError),
    /// The body is not a usable STAC item.
    #[error("parse: {0}")]
    Parse(#[from] ItemError),
    /// Parsing the item did not finish (its worker task panicked).
    #[error("internal: {0}")]
    Internal(String),
    /// A row of the inventory has no usable bucket or key (nothing was fetched); the failure's
    /// key is [`MalformedRow::locator`].
    #[error("inventory: malformed row: {}", .0.problem)]
    InventoryRow(MalformedRow),
}

impl FailureReason {
    /// A stable name of the kind of failure (the key of `failures_by_reason`).
    pub fn kind(&self) -> &'static str {
        match self {
            FailureReason::Fetch(FetchError::NotFound) => "fetch: not found",
            FailureReason::Fetch(FetchError::Forbidden(_)) => "fetch: access denied",
            FailureReason::Fetch(FetchError::Failed { .. }) => "fetch: failed",
            FailureReason::Parse(ItemError::InvalidJson(_)) => "parse: invalid JSON",
            FailureReason::Parse(ItemError::NotAnObject) => "parse: not an object",
            FailureReason::Parse(ItemError::MissingId) => "parse: no id",
            FailureReason::Parse(ItemError::InvalidGeometry(_)) => "parse: invalid geometry",
            FailureReason::Parse(ItemError::BadProperties) => "parse: bad properties",
            FailureReason::Internal(_) => "internal",
            FailureReason::InventoryRow(_) => "inventory: malformed row",
        }
    }

    /// Whether the body was fetched (the failure came after the fetch).
    pub fn fetched(&self) -> bool {
        !matches!(
            self,
            FailureReason::Fetch(_) | FailureReason::InventoryRow(_)
        )
    }
}

enum Outcome {
    Ok(Box<ItemRow>, Vec<String>, ParseCounters, InventoryRecord),
    /// The hash index holds the key's id: not fetched.
    Known,
    Failed(InventoryRecord, FailureReason, ParseCounters),
    /// A malformed inventory row: not an item, nothing fetched.
    Malformed(MalformedRow),
}

struct Failure {
    bucket: String,
    key: String,
    reason: FailureReason,
}

/// Run an ingest.
pub async fn ingest(options: &IngestOptions, reporter: &dyn Reporter) -> Result<IngestMetrics> {
    ingest_with_clock(options, reporter, Arc::new(SystemClock)).await
}

/// Run an ingest with an injected clock (lock expiry).
pub async fn ingest_with_clock(
    options: &IngestOptions,
    reporter: &dyn Reporter,
    clock: Arc<dyn Clock>,
) -> Result<IngestMetrics> {
    let started = Instant::now();
    let lock = crate::lock::acquire_for_catalog(
        options.lock,
        &options.catalog,
        options.lock_location.as_deref(),
        LockOptions::new(options.owner.clone()).with_ttl_hours(options.lock_ttl_hours),
        clock.clone(),
    )
    .await?;
    let result = run(options, reporter, lock.as_ref(), started, clock.as_ref()).await;
    crate::lock::release_after(lock, result).await
}

struct Run<'a> {
    options: &'a IngestOptions,
    reporter: &'a dyn Reporter,
    lock: Option<&'a RenewingLock>,
    catalog: Catalog,
    table: Table,
    columns: Arc<Columns>,
    warehouse: Location,
    placement: Arc<Placement>,
    metrics: IngestMetrics,
    pending_files: Vec<iceberg::spec::DataFile>,
    pending_ids: Vec<IdHash>,
    chunks_since_commit: usize,
    chunk_no: u64,
    cells: BTreeSet<String>,
    years: BTreeSet<Option<i32>>,
    failures: FailureLog,
}

async fn run(
    options: &IngestOptions,
    reporter: &dyn Reporter,
    lock: Option<&RenewingLock>,
    started: Instant,
    clock: &dyn Clock,
) -> Result<IngestMetrics> {
    let (mut state, partitioner) = Run::open(options, reporter, lock, clock).await?;
    let mut inventory = read_inventory(&options.inventory, options.inventory_options.clone());
    // The main work; whatever happens, the summary and failures report are written after it.
    let outcome = state.ingest_inventory(&mut inventory, partitioner).await;
    state.finish(outcome, inventory.stats(), started).await
}

/// What every item's fetch-and-parse task shares.
struct ItemContext {
    /// The hash index's ids (mode `new`).
    known: Option<KnownIds>,
    suffix: String,
    fetcher: Fetcher,
    columns: Arc<Columns>,
    partitioner: Arc<dyn crate::grid::Partitioner>,
    /// Parsing and cell cover are CPU work: at most one task per core leaves the runtime.
    cpu: Arc<tokio::sync::Semaphore>,
}

impl ItemContext {
    /// One inventory entry: skipped when known, else fetched, parsed and covered by cells.
    async fn process(self: Arc<Self>, entry: InventoryEntry) -> Result<Outcome> {
        let rec = match entry {
            InventoryEntry::Record(rec) => rec,
            InventoryEntry::Malformed(row) => return Ok(Outcome::Malformed(row)),
        };
        if let Some(known) = &self.known {
            let id = key_item_id(&rec.key, &self.suffix);
            if known.contains(&hash_index::hash_id(id)) {
                return Ok(Outcome::Known);
            }
        }
        let parsed = fetch_and_parse(
            &self.fetcher,
            &rec,
            self.columns.clone(),
            self.partitioner.clone(),
            &self.cpu,
        )
        .await;
        Ok(match parsed {
            Ok((row, cells, counters)) => Outcome::Ok(row, cells, counters, rec),
            Err((reason, counters)) => Outcome::Failed(rec, reason, counters),
        })
    }
}

impl<'a> Run<'a> {
    /// Open (or start) the catalog and table, decide grid, hash index and placement.
    async fn open(
        options: &'a IngestOptions,
        reporter: &'a dyn Reporter,
        lock: Option<&'a RenewingLock>,
        clock: &dyn Clock,
    ) -> Result<(Self, Arc<dyn crate::grid::Partitioner>)> {
        let now = clock.now();
        let run_id = format!(
            "{}-{:04x}",
            now.format("%Y%m%dT%H%M%SZ"),
            uuid::Uuid::new_v4().as_u128() as u16
        );
        // Ingest is the one command that may start a catalog (and a table: not over a
        // warehouse that already holds one, see `Catalog::load_or_create`).
        let catalog =
            Catalog::open_with(&options.catalog, &options.warehouse, OpenMode::Create).await?;
        let warehouse = catalog.warehouse().clone();
        let existing = catalog.load_table().await?;
        let grid = match (&options.grid, &existing) {
            (Some(g), _) => g.clone(),
            (None, Some(t)) => grid_from_properties(t.metadata().properties())?,
            (None, None) => GridConfig::H3 { resolution: 1 },
        };
        let hash_index_path = match (&options.hash_index, &existing) {
            (Some(h), _) => h.clone(),
            (None, Some(t)) => t
                .metadata()
                .properties()
                .get(PROP_HASH_INDEX)
                .cloned()
                .unwrap_or_else(|| hash_index::default_index_path(warehouse.url())),
            (None, None) => hash_index::default_index_path(warehouse.url()),
        };
        let table = catalog
            .load_or_create_with(&grid, &hash_index_path, options.layout)
            .await?;
        let placement = Arc::new(Placement::new(
            crate::catalog::table_layout(&table).await?,
            &grid,
        ));
        // Publish a new table (or backfilled properties) even if the run writes no file.
        if catalog.is_remote() {
            catalog.upload().await?;
        }
        let partitioner = grid.load_partitioner().await?;
        let columns = Arc::new(Columns::new(&table_columns(
            table.metadata().current_schema(),
        )));
        let metrics = IngestMetrics {
            run_id,
            grid: match &grid {
                GridConfig::H3 { resolution } => format!("h3:{resolution}"),
                GridConfig::GeoJson {
                    boundaries_path, ..
                } => format!("geojson:{boundaries_path}"),
            },
            hash_index_path,
            mode: if options.update_hash_index {
                options.mode
            } else {
                IngestMode::All
            },
            ..Default::default()
        };
        let state = Run {
            options,
            reporter,
            lock,
            catalog,
            table,
            columns,
            warehouse,
            placement,
            metrics,
            pending_files: Vec::new(),
            pending_ids: Vec::new(),
            chunks_since_commit: 0,
            chunk_no: 0,
            cells: BTreeSet::new(),
            years: BTreeSet::new(),
            failures: FailureLog::default(),
        };
        Ok((state, partitioner))
    }

    /// The ids to skip (mode `new`), after bringing the hash index up to the catalog: a crash
    /// between a commit and its index update, or a foreign index, is repaired before the index
    /// decides anything.
    async fn known_ids(&mut self) -> Result<Option<KnownIds>> {
        if !self.options.update_hash_index {
            return Ok(None);
        }
        let loc = Location::parse(&self.metrics.hash_index_path)?;
        self.reporter.phase("hash index", None);
        let reconciled = hash_index::reconcile(&self.table, &loc).await?;
        self.reporter.finish_phase();
        self.metrics.index_reconciled = Some(reconciled);
        Ok(match self.options.mode {
            IngestMode::New => Some(KnownIds::load(&loc).await?),
            IngestMode::All => None,
        })
    }

    /// Fetch, parse and write every entry of the inventory in chunks, committing as the
    /// options say and once at the end.
    async fn ingest_inventory(
        &mut self,
        inventory: &mut crate::inventory::InventoryStream,
        partitioner: Arc<dyn crate::grid::Partitioner>,
    ) -> Result<()> {
        let options = self.options;
        let ctx = Arc::new(ItemContext {
            known: self.known_ids().await?,
            suffix: options.inventory_options.suffix.clone(),
            fetcher: Fetcher::new(options.fetch.clone())?,
            columns: self.columns.clone(),
            partitioner,
            cpu: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        });
        self.reporter
            .phase("ingest", options.inventory_options.limit);
        let mut groups = Groups::new();
        {
            let items = inventory
                .map_ok(|entry| ctx.clone().process(entry))
                .try_buffer_unordered(options.concurrency.max(1));
            futures::pin_mut!(items);
            while let Some(next) = items.next().await {
                self.take(next?, &mut groups)?;
                if groups.items() >= options.chunk_items.max(1)
                    || groups.approx_bytes() >= options.chunk_bytes
                {
                    let full = std::mem::take(&mut groups);
                    self.flush(full).await?;
                }
            }
        }
        if !groups.is_empty() {
            self.flush(groups).await?;
        }
        self.commit().await?;
        self.reporter.finish_phase();
        Ok(())
    }

    /// Count one item's outcome; a parsed item joins the chunk's groups.
    fn take(&mut self, outcome: Outcome, groups: &mut Groups) -> Result<()> {
        match outcome {
            Outcome::Ok(row, cells, counters, rec) => {
                self.reporter.advance(1);
                self.metrics.fetched += 1;
                add_counters(&mut self.metrics.parse, &counters);
                if row.id != key_item_id(&rec.key, &self.options.inventory_options.suffix) {
                    self.metrics.id_mismatch += 1;
                    if self.metrics.id_mismatch_sample.len() < MISMATCH_SAMPLE {
                        self.metrics
                            .id_mismatch_sample
                            .push((rec.key, row.id.clone()));
                    }
                }
                groups.add(*row, cells);
            }
            Outcome::Known => {
                self.reporter.advance(1);
                self.metrics.skipped_known += 1;
            }
            Outcome::Failed(rec, reason, counters) => {
                self.reporter.advance(1);
                if reason.fetched() {
                    self.metrics.fetched += 1;
                }
                add_counters(&mut self.metrics.parse, &counters);
                self.record_failure(Failure {
                    bucket: rec.bucket,
                    key: rec.key,
                    reason,
                })?;
            }
            Outcome::Malformed(row) => {
                self.record_failure(Failure {
                    bucket: String::new(),
                    key: row.locator(),
                    reason: FailureReason::InventoryRow(row),
                })?;
            }
        }
        Ok(())
    }

    /// Final counters, then the summary and failures report (also after an error, which is
    /// returned).
    async fn finish(
        mut self,
        outcome: Result<()>,
        inventory: InventoryStats,
        started: Instant,
    ) -> Result<IngestMetrics> {
        self.metrics.inventory = inventory;
        self.metrics.snapshot_id = self.table.metadata().current_snapshot_id();
        self.metrics.cells = self.cells.len() as u64;
        self.metrics.years = self.years.iter().copied().collect();
        self.metrics.elapsed_secs = started.elapsed().as_secs_f64();
        let attempted = self.metrics.fetched + self.metrics.failed;
        self.metrics.items_per_sec = if self.metrics.elapsed_secs > 0.0 {
            attempted as f64 / self.metrics.elapsed_secs
        } else {
            0.0
        };
        if let Err(e) = outcome {
            self.metrics.error = Some(e.to_string());
            // Best effort: the run's own error is what the caller needs to see.
            let _ = self.write_reports().await;
            return Err(e);
        }
        self.write_reports().await?;
        Ok(self.metrics)
    }
}

/// What fetching and parsing one inventory record gives: the row, its partition keys and the
/// parse counters, or why the record is not ingested.
pub(crate) type Parsed =
    std::result::Result<(Box<ItemRow>, Vec<String>, ParseCounters), (FailureReason, ParseCounters)>;

/// Fetch one record's body and parse it into a row and the cells it covers. Parsing and cell
/// cover are CPU work: they run on the blocking pool, at most `cpu`'s permits at once.
pub(crate) async fn fetch_and_parse(
    fetcher: &Fetcher,
    rec: &InventoryRecord,
    columns: Arc<Columns>,
    partitioner: Arc<dyn Partitioner>,
    cpu: &Arc<tokio::sync::Semaphore>,
) -> Parsed {
    let body = match fetcher.fetch(&rec.bucket, &rec.key).await {
        Ok(body) => body,
        Err(e) => return Err((e.into(), ParseCounters::default())),
    };
    let _permit = cpu.clone().acquire_owned().await;
    tokio::task::spawn_blocking(move || {
        let mut counters = ParseCounters::default();
        match parse_item(&body, &columns, &mut counters) {
            Ok((row, geometry)) => {
                let cells = partitioner.keys(geometry.as_ref());
                Ok((Box::new(row), cells, counters))
            }
            Err(e) => Err((FailureReason::from(e), counters)),
        }
    })
    .await
    .unwrap_or_else(|e| {
        Err((
            FailureReason::Internal(Error::task("parsing an item", e).to_string()),
            ParseCounters::default(),
        ))
    })
}

/// One group of a chunk, encoded and written.
pub(crate) struct WrittenGroup {
    /// The group's partition.
    pub key: PartitionValue,
    /// Where it was written, relative to the root it was written under.
    pub rel: String,
    /// Bytes written.
    pub size: u64,
    /// Rows written.
    pub rows: u64,
    /// The file's footer.
    pub metadata: parquet::file::metadata::ParquetMetaData,
}

/// Names a group's file, relative to the root it is written under.
pub(crate) type GroupName = Arc<dyn Fn(&PartitionValue) -> String + Send + Sync>;

/// Encode every group of `groups` as one GeoParquet file (rows sorted; one encoder per core)
/// and write each with a create-only put at `root/<name_of(key)>`. Encoders stream finished
/// files through a small channel to the uploader, so only a handful of encoded files are in
/// memory at once. A name that exists already is [`Error::Inconsistent`] (names are unique).
/// `finish` turns each written file into what the caller keeps, as soon as it is written: a
/// footer (`WrittenGroup::metadata`, tens of KB with 33 columns' statistics) must not be held
/// for every file of a chunk (measured: 575-664 MB instead of ~270 MB peak RSS for 100k items
/// at H3 res 2, ~5,000 files a chunk).
pub(crate) async fn write_groups<T: Send>(
    groups: Arc<Groups>,
    columns: Arc<Columns>,
    table_cols: Arc<Vec<crate::schema::TableColumn>>,
    writer: WriterOptions,
    root: &Location,
    name_of: GroupName,
    finish: impl Fn(WrittenGroup) -> Result<T> + Send + Sync,
) -> Result<Vec<T>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<(PartitionValue, String, EncodedFile)>>(8);
    let mut encoders = Vec::with_capacity(workers);
    for w in 0..workers {
        let groups = groups.clone();
        let columns = columns.clone();
        let table_cols = table_cols.clone();
        let writer = writer.clone();
        let name_of = name_of.clone();
        let tx = tx.clone();
        encoders.push(tokio::task::spawn_blocking(move || {
            for (i, (key, mut rows)) in groups.iter().enumerate() {
                if i % workers != w {
                    continue;
                }
                sort_rows(&mut rows);
                let rel = name_of(key);
                let encoded = encode_group(&rows, &key.cell, &columns, &table_cols, &writer, &rel)
                    .map(|file| (key.clone(), rel, file));
                let failed = encoded.is_err();
                if tx.blocking_send(encoded).is_err() || failed {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let finish = &finish;
    let written: Vec<T> = tokio_stream_of(rx)
        .map(|encoded| {
            let root = root.clone();
            async move {
                let (key, rel, file) = encoded?;
                let size = file.bytes.len() as u64;
                let path = root.key(&rel);
                let created =
                    put_if_absent(root.store().as_ref(), &path, file.bytes.into()).await?;
                if !created {
                    return Err(Error::Inconsistent(format!(
                        "data file {} already exists; new files get unique names, so \
                         another writer used the same name",
                        root.url_of(&rel)
                    )));
                }
                finish(WrittenGroup {
                    key,
                    rel,
                    size,
                    rows: file.rows as u64,
                    metadata: file.metadata,
                })
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    // A panicked encoder closed its end early: say so rather than count missing files.
    for encoder in encoders {
        encoder
            .await
            .map_err(|e| Error::task("encoding data files", e))?;
    }
    let expected = groups.group_count();
    if written.len() != expected {
        return Err(Error::Inconsistent(format!(
            "internal: {expected} groups but {} files written",
            written.len()
        )));
    }
    Ok(written)
}

/// A failures report being written: CSV rows (bucket, key, reason) spooled to a local
/// temporary file (memory stays bounded however many items fail), uploaded at the end.
#[derive(Default)]
pub(crate) struct FailureLog {
    file: Option<(tempfile::NamedTempFile, csv::Writer<std::fs::File>)>,
}

impl FailureLog {
    /// Add one row (the header is written before the first).
    pub(crate) fn record(&mut self, bucket: &str, key: &str, reason: &str) -> Result<()> {
        if self.file.is_none() {
            let tmp =
                tempfile::NamedTempFile::new().map_err(|e| Error::io(std::env::temp_dir(), e))?;
            let file = tmp.reopen().map_err(|e| Error::io(tmp.path(), e))?;
            let mut w = csv::Writer::from_writer(file);
            w.write_record(["bucket", "key", "reason"])
                .map_err(|e| Error::io(tmp.path(), e.into()))?;
            self.file = Some((tmp, w));
        }
        if let Some((tmp, w)) = &mut self.file {
            w.write_record([bucket, key, reason])
                .map_err(|e| Error::io(tmp.path(), e.into()))?;
        }
        Ok(())
    }

    /// Write the report to `to` when it has rows; `false` (nothing written) when it has none.
    pub(crate) async fn upload(&mut self, to: &Location) -> Result<bool> {
        let Some((tmp, mut w)) = self.file.take() else {
            return Ok(false);
        };
        w.flush().map_err(|e| Error::io(tmp.path(), e))?;
        drop(w);
        let bytes = std::fs::read(tmp.path()).map_err(|e| Error::io(tmp.path(), e))?;
        to.put_bytes(bytes.into()).await?;
        Ok(true)
    }
}

/// A receiver as a stream.
fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

pub(crate) fn add_counters(total: &mut ParseCounters, c: &ParseCounters) {
    total.datetime_date_only += c.datetime_date_only;
    total.datetime_naive += c.datetime_naive;
    total.datetime_missing += c.datetime_missing;
    total.datetime_unparsable += c.datetime_unparsable;
    total.overflow_values += c.overflow_values;
    total.null_geometry += c.null_geometry;
    total.invalid_coordinates += c.invalid_coordinates;
}

impl Run<'_> {
    fn record_failure(&mut self, f: Failure) -> Result<()> {
        self.metrics.failed += 1;
        *self
            .metrics
            .failures_by_reason
            .entry(f.reason.kind().to_string())
            .or_default() += 1;
        self.failures
            .record(&f.bucket, &f.key, &f.reason.to_string())?;
        Ok(())
    }

    async fn flush(&mut self, groups: Groups) -> Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        let (mut pending, upto) = self.columns.pending();
        if !pending.is_empty() {
            // Discovery order follows the concurrent fetches; the schema gets a stable order
            // (by name, the overflow column last) so the same input gives the same table.
            pending.sort_by(|a, b| {
                (a.0 == OVERFLOW_COLUMN, &a.0).cmp(&(b.0 == OVERFLOW_COLUMN, &b.0))
            });
            self.reporter.message(&format!(
                "adding {} column(s) to the table schema",
                pending.len()
            ));
            self.table = self.catalog.add_columns(&self.table, &pending).await?;
            self.columns.mark_known(upto);
            self.metrics
                .schema_columns_added
                .extend(pending.into_iter().map(|(n, _)| n));
        }
        let chunk = self.chunk_no;
        self.chunk_no += 1;
        let groups = Arc::new(groups);
        let table_cols = Arc::new(table_columns(self.table.metadata().current_schema()));
        crate::fault::check("ingest.before_write")?;
        let name_of: GroupName = {
            let placement = self.placement.clone();
            Arc::new(move |key: &PartitionValue| {
                format!(
                    "{}/part_{chunk:06}_{:08x}.parquet",
                    placement.dir(key),
                    uuid::Uuid::new_v4().as_u128() as u32
                )
            })
        };
        let schema = self.table.metadata().current_schema().clone();
        let spec_id = self.table.metadata().default_partition_spec_id();
        let warehouse = &self.warehouse;
        let written = write_groups(
            groups.clone(),
            self.columns.clone(),
            table_cols,
            self.options.writer.clone(),
            warehouse,
            name_of,
            |w| {
                let df = data_file_from_footer(
                    &schema,
                    spec_id,
                    &w.metadata,
                    &warehouse.url_of(&w.rel),
                    w.size,
                    &w.key,
                )?;
                Ok((w.key, df, w.size, w.rows))
            },
        )
        .await?;
        crate::fault::check("ingest.after_write")?;
        for (key, df, size, rows) in written {
            self.metrics.files += 1;
            self.metrics.bytes += size;
            self.metrics.rows += rows;
            self.cells.insert(key.cell.clone());
            self.years.insert(key.year);
            self.pending_files.push(df);
        }
        self.metrics.items += groups.items() as u64;
        self.pending_ids
            .extend(groups.ids().map(hash_index::hash_id));
        self.chunks_since_commit += 1;
        if self
            .options
            .commit_every
            .is_some_and(|n| self.chunks_since_commit >= n.max(1))
            || self.pending_files.len() >= self.options.max_files_per_commit.max(1)
            || self.pending_ids.len() >= MAX_PENDING_IDS
        {
            self.commit().await?;
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        if self.pending_files.is_empty() {
            return Ok(());
        }
        if let Some(lock) = self.lock {
            lock.verify().await?;
        }
        let files = std::mem::take(&mut self.pending_files);
        self.reporter
            .message(&format!("committing {} data file(s)", files.len()));
        let props = HashMap::from([
            ("earthcatalog.operation".to_string(), "ingest".to_string()),
            (
                "earthcatalog.run-id".to_string(),
                self.metrics.run_id.clone(),
            ),
        ]);
        self.table = self.catalog.append(&self.table, files, props).await?;
        self.catalog.upload().await?;
        self.metrics.commits += 1;
        // A crash here leaves the index behind the catalog: the next run reconciles it.
        crate::fault::check("ingest.before_index")?;
        self.chunks_since_commit = 0;
        let ids = std::mem::take(&mut self.pending_ids);
        if self.options.update_hash_index && !ids.is_empty() {
            let loc = Location::parse(&self.metrics.hash_index_path)?;
            let stamp = hash_index::IndexStamp::of(&self.table);
            match hash_index::merge_into_index(&loc, ids, stamp.as_ref()).await {
                Ok((added, total)) => {
                    *self.metrics.hash_index_added.get_or_insert(0) += added;
                    self.metrics.hash_index_total = Some(total);
                }
                Err(e) => self.metrics.warnings.push(format!(
                    "hash index {} not updated after the commit: {e}",
                    loc.url()
                )),
            }
        }
        Ok(())
    }

    async fn write_reports(&mut self) -> Result<()> {
        let dir = match &self.options.report_dir {
            Some(d) => Location::parse(d)?,
            None => self.warehouse.join("_reports"),
        };
        let run_id = self.metrics.run_id.clone();
        let loc = dir.join(&format!("ingest_{run_id}_failures.csv"));
        if self.failures.upload(&loc).await? {
            self.metrics.failures_report = Some(loc.url().to_string());
        }
        let loc = dir.join(&format!("ingest_{run_id}_summary.json"));
        self.metrics.summary_report = Some(loc.url().to_string());
        let json = serde_json::to_vec_pretty(&self.metrics).map_err(|e| Error::Parse {
            location: loc.url().to_string(),
            reason: e.to_string(),
        })?;
        loc.put_bytes(json.into()).await
    }
}
