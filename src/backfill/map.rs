//! `backfill map --shard i`: fetch, parse and fan out one shard's keys into part files.
//!
//! ```text
//! plan.json ─▶ done already? exit ─▶ inventory unchanged? ─▶ attempt a (heartbeat)
//! shards/map-<i>.parquet ─▶ fetch (buffer_unordered(concurrency)) ─▶ parse + cells (CPU pool)
//!   ─▶ Groups (one chunk) ─▶ map/<i>/<a>/<cell>/<year>/<chunk>.parquet (create-only)
//!   ─▶ map/<i>/<a>/failures.csv ─▶ map/<i>/done.json (create-only)
//! ```
//!
//! The same fetch → parse → fan-out → encode code as `ingest` (memory bounded by one chunk),
//! but nothing is committed and no lock is taken. Part files use the table's GeoParquet
//! encoding with the plan's columns plus the columns this shard discovered (listed in the done
//! marker; reduce decides their final order and ids). Item failures do not fail the task
//! (retrying would not help): they are counted, listed in `failures.csv`, and reported by
//! `status` and `commit`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{
    Heartbeat, InventoryIdentity, Plan, Stage, Staging, delete_keys, list_below, new_attempt,
    put_json_new,
};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::fetch::{FetchOptions, Fetcher};
use crate::geoparquet::WriterOptions;
use crate::hash_index::key_item_id;
use crate::inventory::{InventoryEntry, InventoryOptions, read_inventory};
use crate::item::{Columns, ParseCounters};
use crate::partition::{Groups, PartitionValue};
use crate::pipeline::{FailureLog, FailureReason, GroupName, add_counters, fetch_and_parse};
use crate::report::Reporter;
use crate::schema::TableColumn;

/// Everything a map task needs.
#[derive(Debug, Clone)]
pub struct MapOptions {
    /// Staging prefix.
    pub staging: String,
    /// This task's shard.
    pub shard: usize,
    /// Fetch settings (an items root for local copies; default: the plan's).
    pub fetch: FetchOptions,
    /// Items fetched concurrently.
    pub concurrency: usize,
    /// Items per chunk (one part file per bucket per chunk).
    pub chunk_items: usize,
    /// Approximate bytes per chunk before it is flushed early.
    pub chunk_bytes: usize,
    /// Part file writer settings.
    pub writer: WriterOptions,
}

impl Default for MapOptions {
    fn default() -> Self {
        Self {
            staging: String::new(),
            shard: 0,
            fetch: FetchOptions::default(),
            concurrency: 256,
            // Ingest's chunk, with half its byte bound: measured on 100k items (res 1, W = 1)
            // 19.7 s and 198 MB peak RSS, against 22.7 s and 159 MB with 25,000 (more, smaller
            // part files) and 21.6 s for a plain ingest of the same items.
            chunk_items: 50_000,
            chunk_bytes: 96 * 1024 * 1024,
            writer: WriterOptions::default(),
        }
    }
}

/// One part file a map attempt wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    /// Its URL.
    pub url: String,
    /// The bucket's cell.
    pub cell: String,
    /// The bucket's year (`None`: unknown).
    pub year: Option<i32>,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
}

impl PartFile {
    /// The bucket.
    pub fn key(&self) -> PartitionValue {
        PartitionValue {
            cell: self.cell.clone(),
            year: self.year,
        }
    }
}

/// A column a map attempt discovered (not in the plan's columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewColumn {
    /// Name.
    pub name: String,
    /// Type name (see [`super::type_name`]).
    #[serde(rename = "type")]
    pub ty: String,
}

/// `map/<i>/done.json`: the attempt that finished, its outputs and counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MapDone {
    /// The plan.
    pub plan_id: String,
    /// The shard.
    pub shard: usize,
    /// The attempt whose outputs these are.
    pub attempt: String,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// Keys in the shard list.
    pub keys: u64,
    /// Item bodies fetched.
    pub fetched: u64,
    /// Items written.
    pub items: u64,
    /// Keys not ingested (fetch or parse failures).
    pub failed: u64,
    /// Failures by kind.
    pub failures_by_reason: BTreeMap<String, u64>,
    /// Rows written (after fan-out).
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// The part files.
    pub files: Vec<PartFile>,
    /// Columns discovered, in discovery order.
    pub columns: Vec<NewColumn>,
    /// Parse-time conversions.
    pub parse: BTreeMap<String, u64>,
    /// Items whose id differs from their key's basename.
    pub id_mismatch: u64,
    /// The failures report, when an item failed.
    pub failures_report: Option<String>,
    /// Wall time of the attempt.
    pub elapsed_secs: f64,
    /// Keys handled per second.
    pub items_per_sec: f64,
}

/// What a map task did.
#[derive(Debug, Clone, Serialize)]
pub struct MapReport {
    /// The shard was done before this run (a retried task): nothing was done.
    pub already_done: bool,
    /// The shard's done marker.
    #[serde(flatten)]
    pub done: MapDone,
}

/// Run one map task (see the module docs).
pub async fn run_map(options: &MapOptions, reporter: &dyn Reporter) -> Result<MapReport> {
    run_map_with_clock(options, reporter, Arc::new(SystemClock)).await
}

/// [`run_map`] with an injected clock (heartbeats, marker times).
pub async fn run_map_with_clock(
    options: &MapOptions,
    reporter: &dyn Reporter,
    clock: Arc<dyn Clock>,
) -> Result<MapReport> {
    let staging = Staging::parse(&options.staging)?;
    let plan = staging.read_plan().await?;
    let i = options.shard;
    if i >= plan.map_shards {
        return Err(Error::invalid_argument(
            "--shard",
            format!(
                "map shard {i} does not exist: the plan has {} map shards (0..={})",
                plan.map_shards,
                plan.map_shards.saturating_sub(1)
            ),
        ));
    }
    if let Some(done) = finished(&staging, &plan, i).await? {
        return Ok(MapReport {
            already_done: true,
            done,
        });
    }
    check_inventory(&plan, i).await?;
    let attempt = new_attempt();
    let dir = staging.attempt(Stage::Map, i, &attempt);
    let heartbeat = Heartbeat::start(dir, &attempt, clock.clone()).await?;
    let result = map_attempt(options, &staging, &plan, &attempt, reporter, clock.as_ref())
        .await
        .and_then(|done| {
            crate::fault::check("backfill.map.before_done")?;
            // The same point for this shard only.
            crate::fault::check(&format!("backfill.map.before_done.{i}"))?;
            Ok(done)
        });
    heartbeat.stop(result.as_ref().err(), clock.now()).await;
    publish(&staging, &plan, result?).await
}

/// Write the done marker of a finished attempt (create-only). When another attempt of the
/// shard wrote one first, its outputs count: this attempt's are deleted and the other's
/// marker is returned.
async fn publish(staging: &Staging, plan: &Plan, done: MapDone) -> Result<MapReport> {
    let i = done.shard;
    if put_json_new(&staging.done(Stage::Map, i), &done).await? {
        return Ok(MapReport {
            already_done: false,
            done,
        });
    }
    let dir = staging.attempt(Stage::Map, i, &done.attempt);
    let ours: Vec<_> = list_below(&dir)
        .await?
        .into_iter()
        .map(|m| m.location)
        .collect();
    delete_keys(&dir, ours).await?;
    let done = super::winning_done(staging, plan, Stage::Map, i).await?;
    Ok(MapReport {
        already_done: true,
        done,
    })
}

/// The shard's done marker, if it has one (of this plan).
async fn finished(staging: &Staging, plan: &Plan, i: usize) -> Result<Option<MapDone>> {
    super::read_done(staging, plan, Stage::Map, i).await
}

impl super::DoneMarker for MapDone {
    fn plan_id(&self) -> &str {
        &self.plan_id
    }
}

/// Refuse to map keys of an inventory that changed since it was planned.
async fn check_inventory(plan: &Plan, i: usize) -> Result<()> {
    let refuse = |reason: String| Error::Refused {
        action: format!("map shard {i} of backfill plan {}", plan.plan_id),
        reason: format!(
            "the inventory {} changed since it was planned: {reason}; plan the backfill again \
             on a fresh staging prefix",
            plan.inventory.url
        ),
    };
    let now = match InventoryIdentity::of(&plan.inventory.url).await {
        Ok(now) => now,
        Err(Error::NotFound { location, .. }) => return Err(refuse(format!("{location} is gone"))),
        Err(Error::Inventory { location, reason }) => {
            return Err(refuse(format!("{location}: {reason}")));
        }
        Err(e) => return Err(e),
    };
    let changes = plan.inventory.changes(&now);
    if changes.is_empty() {
        Ok(())
    } else {
        Err(refuse(changes.join("; ")))
    }
}

enum Outcome {
    Item(crate::pipeline::Parsed, crate::inventory::InventoryRecord),
    Malformed(crate::inventory::MalformedRow),
}

struct Attempt<'a> {
    plan: &'a Plan,
    options: &'a MapOptions,
    staging: &'a Staging,
    attempt: &'a str,
    planned: Vec<TableColumn>,
    columns: Arc<Columns>,
    chunk_no: u64,
    done: MapDone,
    parse: ParseCounters,
    failures: FailureLog,
}

async fn map_attempt(
    options: &MapOptions,
    staging: &Staging,
    plan: &Plan,
    attempt: &str,
    reporter: &dyn Reporter,
    clock: &dyn Clock,
) -> Result<MapDone> {
    let started = Instant::now();
    let i = options.shard;
    let planned = plan.table_columns()?;
    let columns = Arc::new(Columns::new(&planned));
    let partitioner = plan.grid()?.load_partitioner().await?;
    // The task's own items root, else the plan's.
    let fetch = FetchOptions {
        items_root: options
            .fetch
            .items_root
            .clone()
            .or_else(|| plan.items_root.clone()),
    };
    let fetcher = Arc::new(Fetcher::new(fetch)?);
    let mut state = Attempt {
        plan,
        options,
        staging,
        attempt,
        planned,
        columns: columns.clone(),
        chunk_no: 0,
        done: MapDone {
            plan_id: plan.plan_id.clone(),
            shard: i,
            attempt: attempt.to_string(),
            ..Default::default()
        },
        parse: ParseCounters::default(),
        failures: FailureLog::default(),
    };
    reporter.phase("map", plan.shard_keys.get(i).copied());
    let cpu = Arc::new(tokio::sync::Semaphore::new(
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    ));
    let list = staging.shard_list(i);
    let mut keys = read_inventory(list.url(), InventoryOptions::default().with_suffix(""));
    let mut groups = Groups::new();
    {
        let items = (&mut keys)
            .map_ok(|entry| {
                let fetcher = fetcher.clone();
                let columns = columns.clone();
                let partitioner = partitioner.clone();
                let cpu = cpu.clone();
                async move {
                    let rec = match entry {
                        InventoryEntry::Record(rec) => rec,
                        InventoryEntry::Malformed(row) => return Ok(Outcome::Malformed(row)),
                    };
                    let parsed = fetch_and_parse(&fetcher, &rec, columns, partitioner, &cpu).await;
                    Ok::<_, Error>(Outcome::Item(parsed, rec))
                }
            })
            .try_buffer_unordered(options.concurrency.max(1));
        futures::pin_mut!(items);
        while let Some(next) = items.next().await {
            reporter.advance(1);
            state.done.keys += 1;
            match next? {
                Outcome::Item(Ok((row, cells, counters)), rec) => {
                    state.done.fetched += 1;
                    add_counters(&mut state.parse, &counters);
                    if row.id != key_item_id(&rec.key, &plan.suffix) {
                        state.done.id_mismatch += 1;
                    }
                    groups.add(*row, cells);
                }
                Outcome::Item(Err((reason, counters)), rec) => {
                    if reason.fetched() {
                        state.done.fetched += 1;
                    }
                    add_counters(&mut state.parse, &counters);
                    state.fail(&rec.bucket, &rec.key, &reason)?;
                }
                Outcome::Malformed(row) => {
                    let locator = row.locator();
                    state.fail("", &locator, &FailureReason::InventoryRow(row))?;
                }
            }
            if groups.items() >= options.chunk_items.max(1)
                || groups.approx_bytes() >= options.chunk_bytes
            {
                state.flush(std::mem::take(&mut groups)).await?;
            }
        }
    }
    state.flush(groups).await?;
    reporter.finish_phase();
    let mut done = state.done;
    let report = staging.attempt(Stage::Map, i, attempt).join("failures.csv");
    if state.failures.upload(&report).await? {
        done.failures_report = Some(report.url().to_string());
    }
    let (pending, _) = state.columns.pending();
    done.columns = pending
        .into_iter()
        .map(|(name, ty)| NewColumn {
            name,
            ty: super::type_name(ty).to_string(),
        })
        .collect();
    done.parse = counters_map(&state.parse);
    done.finished = Some(clock.now());
    done.elapsed_secs = started.elapsed().as_secs_f64();
    done.items_per_sec = if done.elapsed_secs > 0.0 {
        done.keys as f64 / done.elapsed_secs
    } else {
        0.0
    };
    Ok(done)
}

/// Parse counters as a name → count map (markers stay readable as the counters evolve).
fn counters_map(c: &ParseCounters) -> BTreeMap<String, u64> {
    match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter_map(|(k, v)| v.as_u64().map(|n| (k, n)))
            .collect(),
        _ => BTreeMap::new(),
    }
}

impl Attempt<'_> {
    fn fail(&mut self, bucket: &str, key: &str, reason: &FailureReason) -> Result<()> {
        self.done.failed += 1;
        *self
            .done
            .failures_by_reason
            .entry(reason.kind().to_string())
            .or_default() += 1;
        self.failures.record(bucket, key, &reason.to_string())
    }

    /// Encode and write one chunk's groups as part files.
    async fn flush(&mut self, groups: Groups) -> Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        // The plan's columns, then the ones discovered so far (provisional ids: reduce
        // matches columns by name).
        let (pending, _) = self.columns.pending();
        let mut table_cols = self.planned.clone();
        for (id, (name, ty)) in (self.plan.last_column_id + 1..).zip(pending) {
            table_cols.push(TableColumn {
                name,
                field_id: id,
                ty,
            });
        }
        let chunk = self.chunk_no;
        self.chunk_no += 1;
        let (i, attempt) = (self.options.shard, self.attempt.to_string());
        let name_of: GroupName = Arc::new(move |key: &PartitionValue| {
            let year = key.year.map_or("unknown".to_string(), |y| y.to_string());
            format!("map/{i}/{attempt}/{}/{year}/{chunk:06}.parquet", key.cell)
        });
        let groups = Arc::new(groups);
        let written = crate::pipeline::write_groups(
            groups.clone(),
            self.columns.clone(),
            Arc::new(table_cols),
            self.options.writer.clone(),
            self.staging.root(),
            name_of,
            // Keep only what the done marker needs (not the footer).
            |w| Ok((w.key, w.rel, w.size, w.rows)),
        )
        .await?;
        for (key, rel, size, rows) in written {
            self.done.rows += rows;
            self.done.bytes += size;
            self.done.files.push(PartFile {
                url: self.staging.root().url_of(&rel),
                cell: key.cell,
                year: key.year,
                rows,
                bytes: size,
            });
        }
        self.done.items += groups.items() as u64;
        crate::fault::check("backfill.map.after_chunk")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::tests::plan_at;

    #[tokio::test]
    async fn an_attempt_that_finishes_second_deletes_its_outputs() {
        let (staging, plan) = plan_at("memory://map-race/staging").await;
        let winner = MapDone {
            plan_id: plan.plan_id.clone(),
            shard: 1,
            attempt: "first".into(),
            items: 7,
            ..Default::default()
        };
        assert!(!publish(&staging, &plan, winner).await.unwrap().already_done);
        // A second attempt of the same shard finished later: its part files never count.
        let dir = staging.attempt(Stage::Map, 1, "second");
        for name in ["_attempt.json", "c/2020/000000.parquet"] {
            dir.join(name).put_bytes("x".into()).await.unwrap();
        }
        let loser = MapDone {
            plan_id: plan.plan_id.clone(),
            shard: 1,
            attempt: "second".into(),
            items: 9,
            ..Default::default()
        };
        let r = publish(&staging, &plan, loser).await.unwrap();
        assert!(r.already_done);
        assert_eq!((r.done.attempt.as_str(), r.done.items), ("first", 7));
        assert!(list_below(&dir).await.unwrap().is_empty());
        // A marker of another plan is an error, not a done shard.
        let stray = MapDone {
            plan_id: "other".into(),
            shard: 2,
            ..Default::default()
        };
        crate::backfill::put_json(&staging.done(Stage::Map, 2), &stray)
            .await
            .unwrap();
        let err = finished(&staging, &plan, 2).await.unwrap_err().to_string();
        assert!(err.contains("belongs to plan other"), "{err}");
    }
}
