//! `backfill plan`: read the inventory once, split its keys into map shards, write the plan.
//!
//! ```text
//! lock ─▶ catalog (created with the table like ingest) ─▶ hash index reconciled ─▶ unlock
//! inventory ─▶ [mode new: drop ids the index holds] ─▶ local zstd spill (bucket, key, id_hash)
//!           ─▶ K keys ─▶ shard i = keys [i·K/N, (i+1)·K/N) ─▶ shards/map-<i>.parquet
//!           ─▶ plan.json (create-only, last: a plan without it does not exist)
//! ```
//!
//! Shards are *contiguous* ranges of the inventory, not round-robin: inventories list keys in
//! key order, and ITS_LIVE-like keys group by region, so a contiguous shard touches few
//! (cell, year) buckets and its map task writes few part files (round-robin would make every
//! shard touch nearly every bucket). Memory is bounded: the keys go to a local spill file, and
//! one shard list is written at a time.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::TryStreamExt;
use parquet::arrow::async_writer::{AsyncArrowWriter, ParquetObjectWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{InventoryIdentity, Plan, PlannedColumn, STAGING_FORMAT, Staging, list_below};
use crate::catalog::{Catalog, OpenMode, grid_from_properties};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::grid::GridConfig;
use crate::hash_index::{self, IdHash, KnownIds, hash_id, key_item_id};
use crate::inventory::{InventoryEntry, InventoryOptions, InventoryStats, read_inventory};
use crate::lock::LockOptions;
use crate::partition::{Layout, PROP_LAYOUT};
use crate::pipeline::{FailureLog, IngestMode};
use crate::report::Reporter;
use crate::schema::{PROP_HASH_INDEX, table_columns};
use crate::store::Location;

/// Rows per written shard-list batch.
const BATCH_ROWS: usize = 64 * 1024;

/// Everything `plan` needs.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Inventory (CSV, CSV.gz, Parquet or manifest.json).
    pub inventory: String,
    /// Staging prefix (any object store).
    pub staging: String,
    /// `catalog.db` location (created with the table when missing, like ingest).
    pub catalog: String,
    /// Warehouse root.
    pub warehouse: String,
    /// Grid of a new table; must match an existing table's.
    pub grid: Option<GridConfig>,
    /// Layout of a new table; must match an existing table's.
    pub layout: Option<Layout>,
    /// Hash index location; default: the table property, else beside the warehouse.
    pub hash_index: Option<String>,
    /// Use the hash index (mode `new` skips the ids it holds; commit updates it).
    pub update_hash_index: bool,
    /// Which keys to plan.
    pub mode: IngestMode,
    /// Inventory filters.
    pub inventory_options: InventoryOptions,
    /// Map shards (N).
    pub map_shards: usize,
    /// Reduce shards (M).
    pub reduce_shards: usize,
    /// Take the catalog lock while the catalog and the index are read.
    pub lock: bool,
    /// Lock object; default `.lock` beside the catalog.
    pub lock_location: Option<String>,
    /// Lock owner string.
    pub owner: String,
    /// Where the key spill goes (default: the system temporary directory).
    pub temp_dir: Option<PathBuf>,
    /// Where map tasks read item keys (recorded in the plan).
    pub items_root: Option<String>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            inventory: String::new(),
            staging: String::new(),
            catalog: String::new(),
            warehouse: String::new(),
            grid: None,
            layout: None,
            hash_index: None,
            update_hash_index: true,
            mode: IngestMode::New,
            inventory_options: InventoryOptions::default(),
            map_shards: 8,
            reduce_shards: 2,
            lock: true,
            lock_location: None,
            owner: "earthcatalog-backfill-plan".into(),
            temp_dir: None,
            items_root: None,
        }
    }
}

/// What `plan` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PlanMetrics {
    /// The plan id.
    pub plan_id: String,
    /// `plan.json`.
    pub plan: String,
    /// Map shards.
    pub map_shards: usize,
    /// Reduce shards.
    pub reduce_shards: usize,
    /// Keys planned.
    pub keys: u64,
    /// Fewest and most keys of a shard.
    pub shard_keys_min: u64,
    /// Most keys of a shard.
    pub shard_keys_max: u64,
    /// Keys left out because the hash index holds their id (mode `new`).
    pub skipped_known: u64,
    /// Malformed inventory rows.
    pub malformed: u64,
    /// Inventory counters (of this run: zero when the plan was resumed).
    pub inventory: InventoryStats,
    /// Objects pinned as the inventory's identity.
    pub inventory_objects: usize,
    /// Grid, e.g. `h3:1`.
    pub grid: String,
    /// Layout.
    pub layout: String,
    /// Leftovers of a killed plan removed from the staging prefix.
    pub leftovers_removed: u64,
    /// The staging held this same plan already: nothing was planned, its stages resume.
    pub resumed: bool,
    /// Malformed rows report, if any.
    pub failures_report: Option<String>,
    /// Wall time.
    pub elapsed_secs: f64,
}

/// Plan a backfill (see the module docs).
pub async fn plan(options: &PlanOptions, reporter: &dyn Reporter) -> Result<PlanMetrics> {
    plan_with_clock(options, reporter, Arc::new(SystemClock)).await
}

/// [`plan`] with an injected clock (lock expiry, plan time).
pub async fn plan_with_clock(
    options: &PlanOptions,
    reporter: &dyn Reporter,
    clock: Arc<dyn Clock>,
) -> Result<PlanMetrics> {
    let started = Instant::now();
    if options.map_shards == 0 || options.reduce_shards == 0 {
        return Err(Error::invalid_argument(
            if options.map_shards == 0 {
                "--map-shards"
            } else {
                "--reduce-shards"
            },
            "must be at least 1",
        ));
    }
    let staging = Staging::parse(&options.staging)?;
    if let Some(existing) = existing_plan(&staging).await? {
        // Re-running the same submission (a scheduler recipe run again after a failure)
        // resumes that plan: its stages skip the shards that are done.
        same_plan(&existing, options, &staging)?;
        return Ok(PlanMetrics {
            plan_id: existing.plan_id.clone(),
            plan: staging.plan().url().to_string(),
            map_shards: existing.map_shards,
            reduce_shards: existing.reduce_shards,
            keys: existing.keys,
            shard_keys_min: existing.shard_keys.iter().copied().min().unwrap_or(0),
            shard_keys_max: existing.shard_keys.iter().copied().max().unwrap_or(0),
            skipped_known: existing.skipped_known,
            malformed: existing.malformed,
            inventory_objects: existing.inventory.objects.len(),
            grid: grid_label(&existing.grid()?),
            layout: existing
                .table_properties
                .get(PROP_LAYOUT)
                .cloned()
                .unwrap_or_default(),
            resumed: true,
            elapsed_secs: started.elapsed().as_secs_f64(),
            ..PlanMetrics::default()
        });
    }
    let leftovers_removed = clear_leftovers(&staging).await?;

    let lock = crate::lock::acquire_for_catalog(
        options.lock,
        &options.catalog,
        options.lock_location.as_deref(),
        LockOptions::new(options.owner.clone()),
        clock.clone(),
    )
    .await?;
    let opened = open_table(options).await;
    let table = crate::lock::release_after(lock, opened).await?;
    let TableState {
        table,
        catalog_url,
        warehouse_url,
        grid,
        hash_index,
        known,
    } = table;
    let layout = crate::catalog::table_layout(&table).await?;
    let mut props: std::collections::BTreeMap<String, String> = table
        .metadata()
        .properties()
        .iter()
        .filter(|(k, _)| k.starts_with("earthcatalog.grid."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    props.insert(PROP_LAYOUT.to_string(), layout.as_str().to_string());

    reporter.phase("inventory", options.inventory_options.limit);
    let identity = InventoryIdentity::of(&options.inventory).await?;
    let spill = Spill::create(options.temp_dir.as_deref())?;
    let read = read_keys(options, known.as_deref(), spill, reporter).await?;
    reporter.finish_phase();
    let ReadKeys {
        spill,
        keys,
        skipped_known,
        mut failures,
        malformed,
        stats,
    } = read;

    reporter.phase("shards", Some(options.map_shards as u64));
    let shard_keys = write_shards(&staging, spill, keys, options.map_shards, reporter).await?;
    reporter.finish_phase();
    let failures_report = if failures.upload(&staging.plan_failures()).await? {
        Some(staging.plan_failures().url().to_string())
    } else {
        None
    };

    let md = table.metadata();
    let plan = Plan {
        format: STAGING_FORMAT,
        plan_id: uuid::Uuid::new_v4().simple().to_string(),
        created: clock.now(),
        inventory: identity,
        suffix: options.inventory_options.suffix.clone(),
        since: options.inventory_options.since.map(|s| s.to_rfc3339()),
        limit: options.inventory_options.limit,
        mode: match (options.update_hash_index, options.mode) {
            (true, IngestMode::New) => "new",
            _ => "all",
        }
        .to_string(),
        map_shards: options.map_shards,
        reduce_shards: options.reduce_shards,
        shard_keys: shard_keys.clone(),
        keys,
        skipped_known,
        malformed,
        inventory_stats: serde_json::to_value(&stats).unwrap_or_default(),
        catalog: catalog_url,
        warehouse: warehouse_url,
        table_uuid: md.uuid().to_string(),
        table_properties: props,
        hash_index,
        update_hash_index: options.update_hash_index,
        columns: table_columns(md.current_schema())
            .iter()
            .map(PlannedColumn::of)
            .collect(),
        last_column_id: md.last_column_id(),
        spec_id: md.default_partition_spec_id(),
        items_root: options.items_root.clone(),
    };
    if !super::put_json_new(&staging.plan(), &plan).await? {
        return Err(Error::Refused {
            action: format!("write the plan {}", staging.plan().url()),
            reason: "another plan was written there meanwhile (two plans on one staging \
                     prefix); use that plan, or delete the prefix and plan again"
                .into(),
        });
    }
    Ok(PlanMetrics {
        plan_id: plan.plan_id.clone(),
        plan: staging.plan().url().to_string(),
        map_shards: plan.map_shards,
        reduce_shards: plan.reduce_shards,
        keys,
        shard_keys_min: shard_keys.iter().copied().min().unwrap_or(0),
        shard_keys_max: shard_keys.iter().copied().max().unwrap_or(0),
        skipped_known,
        malformed,
        inventory: stats,
        inventory_objects: plan.inventory.objects.len(),
        grid: grid_label(&grid),
        layout: layout.as_str().to_string(),
        leftovers_removed,
        failures_report,
        resumed: false,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

/// A grid as the summary names it, e.g. `h3:1`.
fn grid_label(grid: &GridConfig) -> String {
    match grid {
        GridConfig::H3 { resolution } => format!("h3:{resolution}"),
        GridConfig::GeoJson {
            boundaries_path, ..
        } => format!("geojson:{boundaries_path}"),
    }
}

/// The plan the staging prefix holds, if any.
async fn existing_plan(staging: &Staging) -> Result<Option<Plan>> {
    if staging.plan().get_bytes_opt().await?.is_none() {
        return Ok(None);
    }
    staging.read_plan().await.map(Some)
}

/// Whether `existing` is the plan `options` would make (same inventory, locations, shards and
/// filters); otherwise the refusal names what differs.
fn same_plan(existing: &Plan, options: &PlanOptions, staging: &Staging) -> Result<()> {
    let url = |s: &str| {
        crate::store::Location::parse(s)
            .map(|l| l.url().to_string())
            .unwrap_or_else(|_| s.to_string())
    };
    let mode = match (options.update_hash_index, options.mode) {
        (true, IngestMode::New) => "new",
        _ => "all",
    };
    let since = options.inventory_options.since.map(|s| s.to_rfc3339());
    let checks: [(&str, String, String); 9] = [
        (
            "--inventory",
            existing.inventory.url.clone(),
            options.inventory.clone(),
        ),
        ("--catalog", url(&existing.catalog), url(&options.catalog)),
        (
            "--warehouse",
            url(&existing.warehouse),
            url(&options.warehouse),
        ),
        (
            "--map-shards",
            existing.map_shards.to_string(),
            options.map_shards.to_string(),
        ),
        (
            "--reduce-shards",
            existing.reduce_shards.to_string(),
            options.reduce_shards.to_string(),
        ),
        ("--mode", existing.mode.clone(), mode.to_string()),
        (
            "--suffix",
            existing.suffix.clone(),
            options.inventory_options.suffix.clone(),
        ),
        (
            "--since",
            format!("{:?}", existing.since),
            format!("{since:?}"),
        ),
        (
            "--limit",
            format!("{:?}", existing.limit),
            format!("{:?}", options.inventory_options.limit),
        ),
    ];
    let mut differ: Vec<String> = checks
        .iter()
        .filter(|(_, have, want)| have != want)
        .map(|(flag, have, want)| format!("{flag} is {have} in the plan, {want} here"))
        .collect();
    if let Some(root) = &options.items_root
        && existing.items_root.as_deref() != Some(root.as_str())
    {
        differ.push(format!(
            "--items-root is {:?} in the plan, {root} here",
            existing.items_root
        ));
    }
    if differ.is_empty() {
        return Ok(());
    }
    Err(Error::Refused {
        action: format!("plan a backfill in {}", staging.root().url()),
        reason: format!(
            "{} already holds another plan ({}): {}; run its stages (`earthcatalog backfill \
             status --staging {}`), or delete the prefix to plan again",
            staging.root().url(),
            existing.plan_id,
            differ.join("; "),
            staging.root().url()
        ),
    })
}

/// Names a killed `plan` leaves under the staging prefix (nothing else may be there).
fn is_backfill_name(rel: &str) -> bool {
    rel.starts_with("shards/")
        || rel.starts_with("map/")
        || rel.starts_with("reduce/")
        || rel == "plan_failures.csv"
        || rel == "commit.json"
}

/// Refuse a staging prefix that holds a plan or foreign objects; delete what a killed plan
/// left. Returns how many objects were deleted.
async fn clear_leftovers(staging: &Staging) -> Result<u64> {
    if staging.plan().get_bytes_opt().await?.is_some() {
        return Err(Error::Refused {
            action: format!("plan a backfill in {}", staging.root().url()),
            reason: format!(
                "{} already holds a plan; run its stages (`earthcatalog backfill status \
                 --staging {}`), or delete the prefix to plan again",
                staging.root().url(),
                staging.root().url()
            ),
        });
    }
    let base = staging.root().prefix().as_ref().len();
    let mut leftovers = Vec::new();
    for meta in list_below(staging.root()).await? {
        let key = meta.location.as_ref();
        let rel = key.get(base..).unwrap_or(key).trim_start_matches('/');
        if !is_backfill_name(rel) {
            return Err(Error::Refused {
                action: format!("plan a backfill in {}", staging.root().url()),
                reason: format!(
                    "the prefix holds {}, which no backfill wrote; use an empty prefix",
                    staging.root().url_of(rel)
                ),
            });
        }
        leftovers.push(meta.location);
    }
    super::delete_keys(staging.root(), leftovers).await
}

struct TableState {
    table: iceberg::table::Table,
    catalog_url: String,
    warehouse_url: String,
    grid: GridConfig,
    hash_index: String,
    known: Option<Arc<KnownIds>>,
}

/// Open (or start) the catalog and table, bring the hash index up to it and load it (mode
/// `new`); the caller holds the lock.
async fn open_table(options: &PlanOptions) -> Result<TableState> {
    let catalog =
        Catalog::open_with(&options.catalog, &options.warehouse, OpenMode::Create).await?;
    let existing = catalog.load_table().await?;
    let grid = match (&options.grid, &existing) {
        (Some(g), _) => g.clone(),
        (None, Some(t)) => grid_from_properties(t.metadata().properties())?,
        (None, None) => GridConfig::H3 { resolution: 1 },
    };
    let warehouse = catalog.warehouse().clone();
    let hash_index = match (&options.hash_index, &existing) {
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
        .load_or_create_with(&grid, &hash_index, options.layout)
        .await?;
    if catalog.is_remote() {
        catalog.upload().await?;
    }
    let known = if options.update_hash_index {
        let loc = Location::parse(&hash_index)?;
        hash_index::reconcile(&table, &loc).await?;
        match options.mode {
            IngestMode::New => Some(Arc::new(KnownIds::load(&loc).await?)),
            IngestMode::All => None,
        }
    } else {
        None
    };
    let catalog_url = Location::parse(&options.catalog)?.url().to_string();
    Ok(TableState {
        table,
        catalog_url,
        warehouse_url: warehouse.url().to_string(),
        grid,
        hash_index,
        known,
    })
}

struct ReadKeys {
    spill: Spill,
    keys: u64,
    skipped_known: u64,
    failures: FailureLog,
    malformed: u64,
    stats: InventoryStats,
}

async fn read_keys(
    options: &PlanOptions,
    known: Option<&KnownIds>,
    mut spill: Spill,
    reporter: &dyn Reporter,
) -> Result<ReadKeys> {
    let suffix = &options.inventory_options.suffix;
    let mut inventory = read_inventory(&options.inventory, options.inventory_options.clone());
    let (mut keys, mut skipped_known, mut malformed) = (0u64, 0u64, 0u64);
    let mut failures = FailureLog::default();
    while let Some(entry) = inventory.try_next().await? {
        match entry {
            InventoryEntry::Record(rec) => {
                reporter.advance(1);
                let hash = hash_id(key_item_id(&rec.key, suffix));
                if known.is_some_and(|k| k.contains(&hash)) {
                    skipped_known += 1;
                    continue;
                }
                spill.push(&rec.bucket, &rec.key, &hash)?;
                keys += 1;
            }
            InventoryEntry::Malformed(row) => {
                malformed += 1;
                failures.record(
                    "",
                    &row.locator(),
                    &crate::pipeline::FailureReason::InventoryRow(row.clone()).to_string(),
                )?;
            }
        }
    }
    Ok(ReadKeys {
        spill,
        keys,
        skipped_known,
        failures,
        malformed,
        stats: inventory.stats(),
    })
}

/// Write shard `i` = keys `[i·K/N, (i+1)·K/N)` of the spill, one shard at a time. Returns the
/// keys per shard.
async fn write_shards(
    staging: &Staging,
    spill: Spill,
    keys: u64,
    shards: usize,
    reporter: &dyn Reporter,
) -> Result<Vec<u64>> {
    let mut reader = spill.finish()?;
    let n = shards as u64;
    let mut counts = Vec::with_capacity(shards);
    for i in 0..n {
        let (from, to) = (i * keys / n, (i + 1) * keys / n);
        let loc = staging.shard_list(i as usize);
        let mut writer = ShardWriter::create(&loc)?;
        let mut rows = Vec::with_capacity(BATCH_ROWS.min((to - from) as usize));
        for _ in from..to {
            let row = reader.next_row()?.ok_or_else(|| {
                Error::Inconsistent(format!(
                    "internal: the key spill ended before key {to} of {keys}"
                ))
            })?;
            rows.push(row);
            if rows.len() >= BATCH_ROWS {
                writer.write(&std::mem::take(&mut rows)).await?;
            }
        }
        writer.write(&rows).await?;
        writer.finish().await?;
        counts.push(to - from);
        reporter.advance(1);
    }
    Ok(counts)
}

/// Streams one shard list (the delta format: bucket, key, id_hash) to its object.
struct ShardWriter {
    inner: AsyncArrowWriter<ParquetObjectWriter>,
    url: String,
}

impl ShardWriter {
    fn create(loc: &Location) -> Result<Self> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let sink = ParquetObjectWriter::new(loc.store().clone(), loc.prefix().clone());
        let inner = AsyncArrowWriter::try_new(sink, crate::hash_index::delta_schema(), Some(props))
            .map_err(|e| Error::parquet(loc.url(), e))?;
        Ok(Self {
            inner,
            url: loc.url().to_string(),
        })
    }

    async fn write(&mut self, rows: &[(String, String, IdHash)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = crate::hash_index::delta_batch(rows, &self.url)?;
        self.inner
            .write(&batch)
            .await
            .map_err(|e| Error::parquet(&self.url, e))
    }

    async fn finish(self) -> Result<()> {
        self.inner
            .close()
            .await
            .map(|_| ())
            .map_err(|e| Error::parquet(&self.url, e))
    }
}

/// The planned keys in inventory order, in a local zstd file:
/// `u32 bucket length | bucket | u32 key length | key | 16-byte id hash` per key.
struct Spill {
    file: tempfile::NamedTempFile,
    writer: zstd::stream::Encoder<'static, BufWriter<std::fs::File>>,
}

impl Spill {
    fn create(dir: Option<&std::path::Path>) -> Result<Self> {
        let dir = dir.map_or_else(std::env::temp_dir, std::path::Path::to_path_buf);
        let file = tempfile::Builder::new()
            .prefix("earthcatalog-plan-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        let out = file.reopen().map_err(|e| Error::io(file.path(), e))?;
        let writer = zstd::stream::Encoder::new(BufWriter::with_capacity(256 * 1024, out), 1)
            .map_err(|e| Error::io(file.path(), e))?;
        Ok(Self { file, writer })
    }

    fn push(&mut self, bucket: &str, key: &str, hash: &IdHash) -> Result<()> {
        let mut buf = Vec::with_capacity(bucket.len() + key.len() + 24);
        buf.extend_from_slice(&(bucket.len() as u32).to_le_bytes());
        buf.extend_from_slice(bucket.as_bytes());
        buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(hash);
        self.writer
            .write_all(&buf)
            .map_err(|e| Error::io(self.file.path(), e))
    }

    fn finish(self) -> Result<SpillReader> {
        let path = self.file.path().to_path_buf();
        let mut inner = self.writer.finish().map_err(|e| Error::io(&path, e))?;
        inner.flush().map_err(|e| Error::io(&path, e))?;
        drop(inner);
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let decoder = zstd::stream::Decoder::new(file).map_err(|e| Error::io(&path, e))?;
        Ok(SpillReader {
            _file: self.file,
            path,
            reader: BufReader::with_capacity(256 * 1024, decoder),
        })
    }
}

struct SpillReader {
    _file: tempfile::NamedTempFile,
    path: PathBuf,
    reader: BufReader<zstd::stream::Decoder<'static, BufReader<std::fs::File>>>,
}

impl SpillReader {
    fn next_row(&mut self) -> Result<Option<(String, String, IdHash)>> {
        let Some(bucket) = self.string()? else {
            return Ok(None);
        };
        let key = self.string()?.ok_or_else(|| self.truncated())?;
        let mut hash = [0u8; 16];
        self.reader
            .read_exact(&mut hash)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(Some((bucket, key, hash)))
    }

    fn string(&mut self) -> Result<Option<String>> {
        let mut len = [0u8; 4];
        match self.reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io(&self.path, e)),
        }
        let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| Error::io(&self.path, e))?;
        String::from_utf8(buf)
            .map(Some)
            .map_err(|_| self.truncated())
    }

    fn truncated(&self) -> Error {
        Error::Inconsistent(format!("the key spill {} is damaged", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_round_trips_in_order() {
        let mut s = Spill::create(None).unwrap();
        s.push("b", "k/1.stac.json", &[1; 16]).unwrap();
        s.push("", "ü/2", &[2; 16]).unwrap();
        let mut r = s.finish().unwrap();
        assert_eq!(
            r.next_row().unwrap(),
            Some(("b".into(), "k/1.stac.json".into(), [1; 16]))
        );
        assert_eq!(
            r.next_row().unwrap(),
            Some(("".into(), "ü/2".into(), [2; 16]))
        );
        assert_eq!(r.next_row().unwrap(), None);
    }

    #[tokio::test]
    async fn a_killed_plans_leftovers_are_cleared_and_foreign_objects_refused() {
        let staging = Staging::parse("memory://plan-leftovers/s").unwrap();
        for name in [
            "shards/map-0.parquet",
            "map/0/a/_attempt.json",
            "plan_failures.csv",
        ] {
            staging
                .root()
                .join(name)
                .put_bytes("x".into())
                .await
                .unwrap();
        }
        assert_eq!(clear_leftovers(&staging).await.unwrap(), 3);
        assert!(list_below(staging.root()).await.unwrap().is_empty());
        // Something no backfill wrote: refused, nothing deleted.
        staging
            .root()
            .join("shards/map-1.parquet")
            .put_bytes("x".into())
            .await
            .unwrap();
        staging
            .root()
            .join("notes.txt")
            .put_bytes("x".into())
            .await
            .unwrap();
        let err = clear_leftovers(&staging).await.unwrap_err();
        assert_eq!(err.category(), crate::error::Category::Usage);
        assert!(err.to_string().contains("notes.txt"), "{err}");
        assert_eq!(list_below(staging.root()).await.unwrap().len(), 2);
        // A plan: refused, naming the status command.
        staging.plan().put_bytes("{}".into()).await.unwrap();
        let err = clear_leftovers(&staging).await.unwrap_err().to_string();
        assert!(err.contains("already holds a plan"), "{err}");
    }

    #[test]
    fn only_backfill_names_are_leftovers() {
        for ok in [
            "shards/map-0.parquet",
            "map/3/abc/_attempt.json",
            "reduce/0/done.json",
            "plan_failures.csv",
        ] {
            assert!(is_backfill_name(ok), "{ok}");
        }
        for foreign in ["catalog.db", "warehouse/x.parquet", "plan.json.bak"] {
            assert!(!is_backfill_name(foreign), "{foreign}");
        }
    }
}
