//! A backfill scaled out over the job schedulers people already run: `plan → map → reduce →
//! commit` stages of one binary, with an object-store prefix (the *staging*) as the only shared
//! state. A Kubernetes Indexed Job, an AWS Batch array job, a Slurm array or a GitHub Actions
//! matrix hands each task its index, retries failed tasks and starts the next stage after all
//! tasks of the previous one finished; nothing here schedules anything.
//!
//! ```text
//! plan    (1 task, lock held briefly) inventory ─▶ [skip ids the hash index holds]
//!           ─▶ contiguous key ranges ─▶ shards/map-<i>.parquet (bucket, key, id_hash)
//!           ─▶ plan.json (inventory identity, grid, layout, columns, shard counts)
//! map i   (N tasks, no lock, no catalog) shards/map-<i>.parquet ─▶ fetch ─▶ parse ─▶ cells
//!           ─▶ map/<i>/<attempt>/<cell>/<year>/<chunk>.parquet ─▶ map/<i>/done.json
//! reduce j (M tasks, no lock, no catalog) every map output of the buckets hash(cell, year) % M = j
//!           ─▶ dedup (version rule), sort, split at the target size
//!           ─▶ <warehouse>/<table placement>/backfill_<plan>_<hex>.parquet ─▶ reduce/<j>/done.json
//! commit  (1 task, under the lock) every shard done? ─▶ one append, or one replace merging the
//!           table's files of the same buckets ─▶ upload catalog ─▶ hash index ─▶ delete staging
//! status  per-stage progress from the markers
//! ```
//!
//! # Staging layout (under `--staging`, any object store)
//!
//! | object | written by | meaning |
//! |---|---|---|
//! | `plan.json` | plan (create-only, last) | the plan: inventory identity, options, table shape |
//! | `shards/map-<i>.parquet` | plan | the keys of map shard `i` (the delta file format) |
//! | `plan_failures.csv` | plan | malformed inventory rows |
//! | `map/<i>/<attempt>/_attempt.json` | map | who runs the attempt, heartbeat |
//! | `map/<i>/<attempt>/<cell>/<year>/<chunk>.parquet` | map | one part file per bucket per chunk |
//! | `map/<i>/<attempt>/failures.csv` | map | items not ingested (bucket, key, reason) |
//! | `map/<i>/<attempt>/_failed.json` | map | the error that stopped the attempt |
//! | `map/<i>/done.json` | map (create-only) | the outputs and counts of the attempt that finished |
//! | `reduce/<j>/<attempt>/_attempt.json`, `_failed.json` | reduce | as for map |
//! | `reduce/<j>/done.json` | reduce (create-only) | the warehouse files it wrote |
//! | `commit.json` | commit | the table files its commit replaces (deleted after it) |
//!
//! # Guarantees
//!
//! * **Only marked outputs count.** A task writes its outputs under a fresh attempt id and then
//!   its done marker with a create-only put. A retried task whose marker exists exits 0 at
//!   once; one that died part-way is redone under a new attempt; outputs of attempts no marker
//!   names are never read, and `commit` deletes them (the staging prefix entirely, and
//!   `backfill_<plan>_*` warehouse files no marker named).
//! * **Workers need no lock and never touch the catalog.** `map` and `reduce` read the grid,
//!   layout and columns from `plan.json`; reduce outputs are unregistered warehouse files with
//!   names no other writer uses (compaction never deletes them as leftovers) until `commit`
//!   registers them.
//! * **The inventory is pinned.** `plan.json` records the size, ETag and last-modified time of
//!   the inventory (the manifest and each of its data files); `map` refuses to run when any of
//!   them changed.
//! * **One commit.** `commit` refuses, naming the missing shards, unless every shard is done
//!   (`--allow-partial` commits what is done and says what is not); it registers everything in
//!   one Iceberg snapshot tagged with the plan id, so a second `commit` is a no-op and a crash
//!   after the commit is finished (index, cleanup) by the next one.
//! * **End state.** The warehouse holds what one `ingest` plus `compact` would: the same
//!   (id, cell, year) rows, one version per id by the dedup rule, one file per bucket up to the
//!   target size.

pub mod commit;
pub mod map;
pub mod plan;
pub mod reduce;
pub mod shard;
pub mod status;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grid::GridConfig;
use crate::partition::{Layout, PartitionValue, Placement};
use crate::schema::{ColumnType, TableColumn};
use crate::store::{Location, put_if_absent};

pub use commit::{CommitMetrics, CommitOptions, commit};
pub use map::{MapDone, MapOptions, MapReport, run_map};
pub use plan::{PlanMetrics, PlanOptions, plan};
pub use reduce::{ReduceDone, ReduceOptions, ReduceReport, run_reduce};
pub use shard::{ShardSource, shard_index};
pub use status::{StageStatus, StatusReport, status};

/// Version of the staging format (`plan.json` field `format`).
pub const STAGING_FORMAT: u32 = 1;

/// Default target size of a reduce output (Iceberg's `write.target-file-size-bytes`).
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// How often a running task rewrites its `_attempt.json` heartbeat.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);

/// A started attempt without a heartbeat for this long is reported dead by `status`.
pub const DEFAULT_STALE_AFTER_SECS: i64 = 120;

/// The staging prefix and the names of everything in it (see the module docs).
#[derive(Debug, Clone)]
pub struct Staging {
    root: Location,
}

impl Staging {
    /// The staging prefix at `url`.
    pub fn parse(url: &str) -> Result<Self> {
        Ok(Self {
            root: Location::parse(url.trim_end_matches('/'))?,
        })
    }

    /// The prefix.
    pub fn root(&self) -> &Location {
        &self.root
    }

    /// `plan.json`.
    pub fn plan(&self) -> Location {
        self.root.join("plan.json")
    }

    /// `plan_failures.csv`.
    pub fn plan_failures(&self) -> Location {
        self.root.join("plan_failures.csv")
    }

    /// `commit.json`: the table files a commit replaces, written before it.
    pub fn commit_record(&self) -> Location {
        self.root.join("commit.json")
    }

    /// The key list of map shard `i`.
    pub fn shard_list(&self, i: usize) -> Location {
        self.root.join(&format!("shards/map-{i}.parquet"))
    }

    /// The done marker of a shard of `stage`.
    pub fn done(&self, stage: Stage, i: usize) -> Location {
        self.root.join(&format!("{}/{i}/done.json", stage.dir()))
    }

    /// The directory of one attempt of a shard of `stage`.
    pub fn attempt(&self, stage: Stage, i: usize, attempt: &str) -> Location {
        self.root.join(&format!("{}/{i}/{attempt}", stage.dir()))
    }

    /// The directory of every attempt of a shard of `stage`.
    pub fn shard_dir(&self, stage: Stage, i: usize) -> Location {
        self.root.join(&format!("{}/{i}", stage.dir()))
    }

    /// Read `plan.json`; [`Error::NotFound`] when there is none.
    pub async fn read_plan(&self) -> Result<Plan> {
        let loc = self.plan();
        let plan: Plan = read_json(&loc).await?.ok_or_else(|| Error::NotFound {
            what: "backfill plan".into(),
            location: loc.url().to_string(),
            hint: "; run `earthcatalog backfill plan` first (or the backfill was committed and \
                   its staging deleted)"
                .into(),
        })?;
        if plan.format != STAGING_FORMAT {
            return Err(Error::Inconsistent(format!(
                "{} has staging format {}; this earthcatalog reads format {STAGING_FORMAT}",
                loc.url(),
                plan.format
            )));
        }
        Ok(plan)
    }
}

/// The two worker stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Fetch, parse, fan out.
    Map,
    /// Merge per bucket into warehouse files.
    Reduce,
}

impl Stage {
    fn dir(self) -> &'static str {
        match self {
            Stage::Map => "map",
            Stage::Reduce => "reduce",
        }
    }

    /// The stage's name.
    pub fn name(self) -> &'static str {
        self.dir()
    }
}

/// What `plan` decided; every later stage reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// [`STAGING_FORMAT`].
    pub format: u32,
    /// Unique id of this plan (32 hex digits); tags the commit and the reduce outputs.
    pub plan_id: String,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// The inventory and its identity.
    pub inventory: InventoryIdentity,
    /// Key suffix kept.
    pub suffix: String,
    /// `--since`, RFC 3339.
    pub since: Option<String>,
    /// `--limit`.
    pub limit: Option<u64>,
    /// `new` (keys the hash index held were left out) or `all`.
    pub mode: String,
    /// Map shards.
    pub map_shards: usize,
    /// Reduce shards.
    pub reduce_shards: usize,
    /// Keys per map shard.
    pub shard_keys: Vec<u64>,
    /// Keys planned in total.
    pub keys: u64,
    /// Inventory keys left out because the hash index holds their id.
    pub skipped_known: u64,
    /// Malformed inventory rows (listed in `plan_failures.csv`).
    pub malformed: u64,
    /// Inventory counters.
    pub inventory_stats: serde_json::Value,
    /// Catalog URL.
    pub catalog: String,
    /// Warehouse URL.
    pub warehouse: String,
    /// Table uuid at plan time (commit refuses another table).
    pub table_uuid: String,
    /// Grid and layout properties of the table.
    pub table_properties: BTreeMap<String, String>,
    /// Hash index location.
    pub hash_index: String,
    /// Whether commit updates the hash index.
    pub update_hash_index: bool,
    /// The table's writable columns at plan time.
    pub columns: Vec<PlannedColumn>,
    /// The table's last assigned column id at plan time.
    pub last_column_id: i32,
    /// The table's default partition spec id.
    pub spec_id: i32,
    /// Where map tasks read item keys (instead of `s3://<bucket>/`), so a task needs only the
    /// staging URL; a task's own `--items-root` wins. Absent from plans that did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_root: Option<String>,
}

impl Plan {
    /// The grid.
    pub fn grid(&self) -> Result<GridConfig> {
        let props = self.table_properties.clone().into_iter().collect();
        crate::catalog::grid_from_properties(&props)
    }

    /// Where the table's files go.
    pub fn placement(&self) -> Result<Placement> {
        let props = self.table_properties.clone().into_iter().collect();
        Ok(Placement::new(
            Layout::of_properties(&props)?,
            &self.grid()?,
        ))
    }

    /// The planned table columns.
    pub fn table_columns(&self) -> Result<Vec<TableColumn>> {
        self.columns.iter().map(PlannedColumn::to_table).collect()
    }

    /// The first 8 hex digits of the plan id (in reduce output names).
    pub fn short_id(&self) -> &str {
        self.plan_id.get(..8).unwrap_or(&self.plan_id)
    }

    /// The prefix of reduce output names: `backfill_<short id>`.
    pub fn output_prefix(&self) -> String {
        format!("backfill_{}", self.short_id())
    }
}

/// The inventory a plan read, pinned by the identity of every object it consists of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryIdentity {
    /// The inventory location as given.
    pub url: String,
    /// The manifest (if any) then each data file, or the single file.
    pub objects: Vec<ObjectIdentity>,
}

/// What pins one object: size, ETag, last-modified time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectIdentity {
    /// Its URL.
    pub url: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag, when the store has one.
    pub e_tag: Option<String>,
    /// Last modification.
    pub last_modified: DateTime<Utc>,
}

impl InventoryIdentity {
    /// The identity of the inventory at `url` now.
    pub async fn of(url: &str) -> Result<Self> {
        let loc = Location::parse(url)?;
        let mut locations = vec![loc.clone()];
        if crate::inventory::InventoryFormat::detect(url)
            == crate::inventory::InventoryFormat::Manifest
        {
            locations.extend(crate::inventory::manifest::data_files(&loc).await?);
        }
        let mut objects = Vec::with_capacity(locations.len());
        for l in locations {
            let meta = l.store().head(l.prefix()).await.map_err(|e| match e {
                object_store::Error::NotFound { .. } => Error::NotFound {
                    what: "inventory".into(),
                    location: l.url().to_string(),
                    hint: String::new(),
                },
                e => Error::store(l.url(), e),
            })?;
            objects.push(ObjectIdentity {
                url: l.url().to_string(),
                size: meta.size,
                e_tag: meta.e_tag,
                last_modified: meta.last_modified,
            });
        }
        Ok(Self {
            url: url.to_string(),
            objects,
        })
    }

    /// How `now` differs from `self`, one line per object; empty when they are the same.
    pub fn changes(&self, now: &InventoryIdentity) -> Vec<String> {
        let mut out = Vec::new();
        let by_url: BTreeMap<&str, &ObjectIdentity> =
            now.objects.iter().map(|o| (o.url.as_str(), o)).collect();
        for was in &self.objects {
            match by_url.get(was.url.as_str()) {
                None => out.push(format!("{} is gone", was.url)),
                Some(is) if *is != was => out.push(format!(
                    "{} changed (size {} → {}, ETag {} → {}, modified {} → {})",
                    was.url,
                    was.size,
                    is.size,
                    was.e_tag.as_deref().unwrap_or("-"),
                    is.e_tag.as_deref().unwrap_or("-"),
                    was.last_modified.to_rfc3339(),
                    is.last_modified.to_rfc3339()
                )),
                Some(_) => {}
            }
        }
        for is in &now.objects {
            if !self.objects.iter().any(|o| o.url == is.url) {
                out.push(format!("{} is new", is.url));
            }
        }
        out
    }
}

/// A table column as `plan.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedColumn {
    /// Name.
    pub name: String,
    /// Iceberg field id.
    pub field_id: i32,
    /// `string`, `long`, `double`, `boolean`, `timestamptz` or `binary`.
    #[serde(rename = "type")]
    pub ty: String,
}

impl PlannedColumn {
    /// From a table column.
    pub fn of(c: &TableColumn) -> Self {
        Self {
            name: c.name.clone(),
            field_id: c.field_id,
            ty: type_name(c.ty).to_string(),
        }
    }

    /// Back to a table column.
    pub fn to_table(&self) -> Result<TableColumn> {
        Ok(TableColumn {
            name: self.name.clone(),
            field_id: self.field_id,
            ty: parse_type(&self.ty)?,
        })
    }
}

/// The name of a column type in staging markers.
pub fn type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String => "string",
        ColumnType::Long => "long",
        ColumnType::Double => "double",
        ColumnType::Boolean => "boolean",
        ColumnType::TimestampTz => "timestamptz",
        ColumnType::Binary => "binary",
        ColumnType::Bbox => "bbox",
    }
}

/// Parse [`type_name`] back.
pub fn parse_type(name: &str) -> Result<ColumnType> {
    Ok(match name {
        "string" => ColumnType::String,
        "long" => ColumnType::Long,
        "double" => ColumnType::Double,
        "boolean" => ColumnType::Boolean,
        "timestamptz" => ColumnType::TimestampTz,
        "binary" => ColumnType::Binary,
        "bbox" => ColumnType::Bbox,
        other => {
            return Err(Error::Inconsistent(format!(
                "unknown column type {other:?} in a backfill marker"
            )));
        }
    })
}

/// Which reduce shard merges the bucket `key` when there are `shards` of them: a stable hash
/// (xxh3-64 of `<cell>/<year|unknown>`) modulo `shards`.
pub fn reduce_shard_of(key: &PartitionValue, shards: usize) -> usize {
    let year = key.year.map_or("unknown".to_string(), |y| y.to_string());
    let h = xxhash_rust::xxh3::xxh3_64(format!("{}/{year}", key.cell).as_bytes());
    (h % shards.max(1) as u64) as usize
}

/// Who runs an attempt (`_attempt.json`), rewritten as a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptInfo {
    /// The attempt id.
    pub attempt: String,
    /// Host name.
    pub hostname: String,
    /// Process id.
    pub pid: u32,
    /// When it started.
    pub started: DateTime<Utc>,
    /// Last heartbeat.
    pub heartbeat: DateTime<Utc>,
}

/// Why an attempt stopped (`_failed.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptFailure {
    /// The error.
    pub error: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A done marker (map or reduce): names the plan that wrote it.
pub(crate) trait DoneMarker: DeserializeOwned {
    /// The plan it belongs to.
    fn plan_id(&self) -> &str;
}

/// Shard `i`'s done marker of `stage`, if it has one. A marker of another plan is
/// [`Error::Inconsistent`].
pub(crate) async fn read_done<T: DoneMarker>(
    staging: &Staging,
    plan: &Plan,
    stage: Stage,
    i: usize,
) -> Result<Option<T>> {
    let loc = staging.done(stage, i);
    let Some(done) = read_json::<T>(&loc).await? else {
        return Ok(None);
    };
    if done.plan_id() != plan.plan_id {
        return Err(Error::Inconsistent(format!(
            "{} belongs to plan {}, not to the plan {} in {}",
            loc.url(),
            done.plan_id(),
            plan.plan_id,
            staging.plan().url()
        )));
    }
    Ok(Some(done))
}

/// The marker another attempt wrote first (its create-only put beat ours).
pub(crate) async fn winning_done<T: DoneMarker>(
    staging: &Staging,
    plan: &Plan,
    stage: Stage,
    i: usize,
) -> Result<T> {
    read_done(staging, plan, stage, i).await?.ok_or_else(|| {
        Error::Inconsistent(format!(
            "{} existed a moment ago and is gone",
            staging.done(stage, i).url()
        ))
    })
}

/// Read a JSON object; `None` when it does not exist.
pub(crate) async fn read_json<T: DeserializeOwned>(loc: &Location) -> Result<Option<T>> {
    let Some(bytes) = loc.get_bytes_opt().await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Parse {
            location: loc.url().to_string(),
            reason: e.to_string(),
        })
}

fn to_json<T: Serialize>(loc: &Location, value: &T) -> Result<bytes::Bytes> {
    serde_json::to_vec_pretty(value)
        .map(bytes::Bytes::from)
        .map_err(|e| Error::Parse {
            location: loc.url().to_string(),
            reason: e.to_string(),
        })
}

/// Write a JSON object (overwriting).
pub(crate) async fn put_json<T: Serialize>(loc: &Location, value: &T) -> Result<()> {
    loc.put_bytes(to_json(loc, value)?).await
}

/// Write a JSON object only if nothing is there yet; `false` when something was.
pub(crate) async fn put_json_new<T: Serialize>(loc: &Location, value: &T) -> Result<bool> {
    put_if_absent(loc.store().as_ref(), loc.prefix(), to_json(loc, value)?).await
}

/// Every object below `dir` (keys relative to it).
pub(crate) async fn list_below(dir: &Location) -> Result<Vec<object_store::ObjectMeta>> {
    use futures::TryStreamExt;
    dir.store()
        .list(Some(dir.prefix()))
        .try_collect()
        .await
        .map_err(|e| Error::store(dir.url(), e))
}

/// Delete the objects at `keys` of `root`'s store (missing ones are fine).
pub(crate) async fn delete_keys(
    root: &Location,
    keys: Vec<object_store::path::Path>,
) -> Result<u64> {
    use futures::StreamExt;
    let store = root.store().clone();
    let results: Vec<Result<bool>> = futures::stream::iter(keys)
        .map(|key| {
            let store = store.clone();
            async move {
                match store.delete(&key).await {
                    Ok(()) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(Error::store(key.as_ref(), e)),
                }
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut n = 0;
    for r in results {
        n += u64::from(r?);
    }
    Ok(n)
}

/// A running attempt's marker, kept fresh by a background heartbeat until dropped.
pub(crate) struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    dir: Location,
}

impl Heartbeat {
    /// Write `_attempt.json` in `dir` and rewrite it every [`HEARTBEAT`].
    pub(crate) async fn start(
        dir: Location,
        attempt: &str,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> Result<Self> {
        let now = clock.now();
        let mut info = AttemptInfo {
            attempt: attempt.to_string(),
            hostname: crate::lock::hostname().to_string(),
            pid: std::process::id(),
            started: now,
            heartbeat: now,
        };
        let marker = dir.join("_attempt.json");
        put_json(&marker, &info).await?;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.tick().await;
            loop {
                tick.tick().await;
                info.heartbeat = clock.now();
                // A missed beat only makes `status` report the attempt stale sooner.
                if let Err(e) = put_json(&marker, &info).await {
                    tracing::warn!(%e, "backfill heartbeat not written");
                }
            }
        });
        Ok(Self { task, dir })
    }

    /// Stop beating; on failure record why in `_failed.json` (best effort: the task's own
    /// error is what the caller reports).
    pub(crate) async fn stop(self, failure: Option<&Error>, now: DateTime<Utc>) {
        self.task.abort();
        if let Some(e) = failure {
            let f = AttemptFailure {
                error: e.to_string(),
                at: now,
            };
            if let Err(e) = put_json(&self.dir.join("_failed.json"), &f).await {
                tracing::warn!(%e, "backfill failure marker not written");
            }
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh attempt id.
pub(crate) fn new_attempt() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plan.json at `url` (memory stores), for stage unit tests.
    pub(crate) async fn plan_at(url: &str) -> (Staging, Plan) {
        let staging = Staging::parse(url).unwrap();
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "format": 1, "plan_id": "0123456789abcdef0123456789abcdef",
            "created": "2026-01-01T00:00:00Z",
            "inventory": {"url": "i", "objects": []},
            "suffix": ".stac.json", "since": null, "limit": null, "mode": "all",
            "map_shards": 4, "reduce_shards": 2, "shard_keys": [0, 0, 0, 0], "keys": 0,
            "skipped_known": 0, "malformed": 0, "inventory_stats": {},
            "catalog": "memory://c/catalog.db", "warehouse": format!("{url}-warehouse"),
            "table_uuid": "u", "table_properties": {}, "hash_index": "h",
            "update_hash_index": false, "columns": [], "last_column_id": 28, "spec_id": 0
        }))
        .unwrap();
        put_json(&staging.plan(), &plan).await.unwrap();
        (staging, plan)
    }

    #[test]
    fn reduce_shards_are_stable_and_spread() {
        let key = |cell: &str, year| PartitionValue {
            cell: cell.into(),
            year,
        };
        // Pinned (values from Python's xxhash.xxh3_64 of "<cell>/<year>"): a worker of another
        // build must assign the same buckets.
        assert_eq!(
            reduce_shard_of(&key("8113bffffffffff", Some(2019)), 1000),
            734
        );
        assert_eq!(reduce_shard_of(&key("8113bffffffffff", None), 1000), 109);
        assert_eq!(reduce_shard_of(&key("cell7", Some(2020)), 3), 1);
        let mut counts = [0usize; 3];
        for c in 0..300 {
            for y in [None, Some(2019), Some(2020)] {
                counts[reduce_shard_of(&key(&format!("cell{c}"), y), 3)] += 1;
            }
        }
        assert!(counts.iter().all(|n| *n > 200), "{counts:?}");
        assert_eq!(reduce_shard_of(&key("x", None), 1), 0);
        assert_eq!(reduce_shard_of(&key("x", None), 0), 0);
    }

    #[test]
    fn identity_changes_name_the_object() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let o = |url: &str, size| ObjectIdentity {
            url: url.into(),
            size,
            e_tag: Some("e".into()),
            last_modified: t("2026-01-01T00:00:00Z"),
        };
        let was = InventoryIdentity {
            url: "m".into(),
            objects: vec![o("a", 1), o("b", 2)],
        };
        assert!(was.changes(&was.clone()).is_empty());
        let now = InventoryIdentity {
            url: "m".into(),
            objects: vec![o("a", 5), o("c", 2)],
        };
        let changes = now.changes(&was);
        assert_eq!(changes.len(), 3, "{changes:?}");
        let changes = was.changes(&now);
        assert!(
            changes[0].starts_with("a changed (size 1 → 5"),
            "{changes:?}"
        );
        assert_eq!(changes[1], "b is gone");
        assert_eq!(changes[2], "c is new");
    }

    #[test]
    fn column_types_round_trip() {
        for ty in [
            ColumnType::String,
            ColumnType::Long,
            ColumnType::Double,
            ColumnType::Boolean,
            ColumnType::TimestampTz,
            ColumnType::Binary,
            ColumnType::Bbox,
        ] {
            assert_eq!(parse_type(type_name(ty)).unwrap(), ty);
        }
        assert!(parse_type("struct").is_err());
    }
}
