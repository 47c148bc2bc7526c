//! `backfill reduce --shard j`: merge the part files of this shard's buckets into final
//! warehouse files.
//!
//! ```text
//! plan.json ─▶ done already? exit ─▶ every map/<i>/done.json (refuse if one is missing)
//!   ─▶ columns: the plan's, then each map shard's discoveries in shard order (first type wins)
//!   ─▶ buckets with reduce_shard_of(cell, year) = j
//!   ─▶ per bucket (`parallelism` at once): compaction's merge — columnar, dedup by the
//!      version rule (later map shard = later in the inventory on ties), sort, split at the
//!      target size — ─▶ <warehouse>/<placement>/backfill_<plan>_<hex>.parquet (create-only)
//!   ─▶ reduce/<j>/done.json (create-only)
//! ```
//!
//! Every reduce task derives the same column list (ids after the plan's last column id) from
//! the same markers, so all outputs agree; commit adds those columns to the table. Outputs are
//! not registered: `commit` does that, and deletes the outputs of attempts that no marker names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use iceberg::spec::Schema;
use serde::{Deserialize, Serialize};

use super::map::MapDone;
use super::{
    DEFAULT_TARGET_FILE_SIZE, Heartbeat, Plan, PlannedColumn, Stage, Staging, new_attempt,
    put_json_new, reduce_shard_of,
};
use crate::catalog::datafile::FileStats;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::geoparquet::WriterOptions;
use crate::partition::PartitionValue;
use crate::report::Reporter;
use crate::rewrite::{Bucket, MergeContext, merge_bounded, merge_bucket};
use crate::schema::{ColumnType, OVERFLOW_COLUMN, TableColumn};
use crate::store::Location;

/// Map done markers read at once.
const MARKER_READS: usize = 32;

/// Everything a reduce task needs.
#[derive(Debug, Clone)]
pub struct ReduceOptions {
    /// Staging prefix.
    pub staging: String,
    /// This task's shard.
    pub shard: usize,
    /// The number of reduce shards, when given (must be the plan's).
    pub of: Option<usize>,
    /// Split outputs at about this many bytes.
    pub target_file_size: u64,
    /// Split outputs above this many rows.
    pub max_rows_per_file: Option<usize>,
    /// Buckets merged at once (memory: about one bucket's inputs and output each).
    pub parallelism: usize,
    /// Output writer settings.
    pub writer: WriterOptions,
    /// Merge what the finished map shards wrote even if some are not done (their keys are
    /// then missing from the backfill, and commit says so).
    pub allow_partial: bool,
}

impl Default for ReduceOptions {
    fn default() -> Self {
        Self {
            staging: String::new(),
            shard: 0,
            of: None,
            target_file_size: DEFAULT_TARGET_FILE_SIZE,
            max_rows_per_file: None,
            parallelism: 2,
            writer: WriterOptions::default(),
            allow_partial: false,
        }
    }
}

/// One warehouse file a reduce task wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducedFile {
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
    /// Its catalog statistics (what commit would read from its footer); markers written
    /// before reduce recorded them have none, and commit reads the footer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<FileStats>,
}

impl ReducedFile {
    /// The bucket.
    pub fn key(&self) -> PartitionValue {
        PartitionValue {
            cell: self.cell.clone(),
            year: self.year,
        }
    }
}

/// `reduce/<j>/done.json`: the warehouse files the finished attempt wrote.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReduceDone {
    /// The plan.
    pub plan_id: String,
    /// The shard.
    pub shard: usize,
    /// Reduce shards.
    pub of: usize,
    /// The attempt whose outputs these are.
    pub attempt: String,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// Map shards whose outputs were merged.
    pub maps: Vec<usize>,
    /// Map shards that were not done (`--allow-partial`).
    pub missing_maps: Vec<usize>,
    /// The columns the outputs were written with (every reduce task derives the same).
    pub columns: Vec<PlannedColumn>,
    /// Target output size in bytes.
    pub target_file_size: u64,
    /// Row cap per output.
    pub max_rows_per_file: Option<usize>,
    /// Buckets merged.
    pub buckets: u64,
    /// Part files read.
    pub inputs: u64,
    /// Rows read.
    pub rows_in: u64,
    /// Rows written.
    pub rows_out: u64,
    /// Rows dropped as older versions of an id.
    pub duplicates: u64,
    /// Bytes written.
    pub bytes: u64,
    /// The outputs.
    pub files: Vec<ReducedFile>,
    /// The digests of the ids written (sorted 16-byte xxh3-128 digests, raw), for commit's
    /// hash index update.
    pub ids: Option<String>,
    /// Distinct ids written.
    pub distinct_ids: u64,
    /// Wall time of the attempt.
    pub elapsed_secs: f64,
    /// Rows read per second.
    pub rows_per_sec: f64,
}

/// What a reduce task did.
#[derive(Debug, Clone, Serialize)]
pub struct ReduceReport {
    /// The shard was done before this run (a retried task): nothing was done.
    pub already_done: bool,
    /// The shard's done marker.
    #[serde(flatten)]
    pub done: ReduceDone,
}

/// Run one reduce task (see the module docs).
pub async fn run_reduce(options: &ReduceOptions, reporter: &dyn Reporter) -> Result<ReduceReport> {
    run_reduce_with_clock(options, reporter, Arc::new(SystemClock)).await
}

/// [`run_reduce`] with an injected clock.
pub async fn run_reduce_with_clock(
    options: &ReduceOptions,
    reporter: &dyn Reporter,
    clock: Arc<dyn Clock>,
) -> Result<ReduceReport> {
    let staging = Staging::parse(&options.staging)?;
    let plan = staging.read_plan().await?;
    let m = plan.reduce_shards;
    if let Some(of) = options.of.filter(|of| *of != m) {
        return Err(Error::invalid_argument(
            "--of",
            format!("is {of}, but the plan has {m} reduce shards"),
        ));
    }
    let j = options.shard;
    if j >= m {
        return Err(Error::invalid_argument(
            "--shard",
            format!(
                "reduce shard {j} does not exist: the plan has {m} reduce shards (0..={})",
                m.saturating_sub(1)
            ),
        ));
    }
    if let Some(done) = finished(&staging, &plan, j).await? {
        return Ok(ReduceReport {
            already_done: true,
            done,
        });
    }
    let maps = map_markers(&staging, &plan).await?;
    let missing: Vec<usize> = (0..plan.map_shards)
        .filter(|i| !maps.contains_key(i))
        .collect();
    if !missing.is_empty() && !options.allow_partial {
        return Err(Error::Refused {
            action: format!("reduce shard {j} of backfill plan {}", plan.plan_id),
            reason: format!(
                "map shard(s) {} of {} are not done; run them first (or pass --allow-partial \
                 to leave their keys out)",
                list(&missing),
                plan.map_shards
            ),
        });
    }
    let columns = union_columns(&plan, &maps)?;
    let attempt = new_attempt();
    let heartbeat = Heartbeat::start(
        staging.attempt(Stage::Reduce, j, &attempt),
        &attempt,
        clock.clone(),
    )
    .await?;
    let result = reduce_attempt(
        options,
        &plan,
        &maps,
        &columns,
        &missing,
        &attempt,
        reporter,
        clock.as_ref(),
    )
    .await
    .and_then(|done| {
        crate::fault::check("backfill.reduce.before_done")?;
        Ok(done)
    });
    heartbeat.stop(result.as_ref().err(), clock.now()).await;
    publish(&staging, &plan, result?).await
}

/// Write the done marker of a finished attempt (create-only). When another attempt of the
/// shard wrote one first, its outputs count: this attempt's warehouse files (uniquely named,
/// never registered) are deleted and the other's marker is returned.
async fn publish(staging: &Staging, plan: &Plan, done: ReduceDone) -> Result<ReduceReport> {
    let j = done.shard;
    if put_json_new(&staging.done(Stage::Reduce, j), &done).await? {
        return Ok(ReduceReport {
            already_done: false,
            done,
        });
    }
    let warehouse = Location::parse(&plan.warehouse)?;
    let ours = done
        .files
        .iter()
        .map(|f| Location::parse(&f.url).map(|l| l.prefix().clone()))
        .collect::<Result<Vec<_>>>()?;
    super::delete_keys(&warehouse, ours).await?;
    let done = super::winning_done(staging, plan, Stage::Reduce, j).await?;
    Ok(ReduceReport {
        already_done: true,
        done,
    })
}

/// `1, 3, 5`.
pub(crate) fn list(shards: &[usize]) -> String {
    shards
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The shard's done marker, if it has one (of this plan).
pub(crate) async fn finished(
    staging: &Staging,
    plan: &Plan,
    j: usize,
) -> Result<Option<ReduceDone>> {
    super::read_done(staging, plan, Stage::Reduce, j).await
}

impl super::DoneMarker for ReduceDone {
    fn plan_id(&self) -> &str {
        &self.plan_id
    }
}

/// Every map shard's done marker that exists, by shard.
pub(crate) async fn map_markers(
    staging: &Staging,
    plan: &Plan,
) -> Result<BTreeMap<usize, MapDone>> {
    let found: Vec<Result<Option<(usize, MapDone)>>> = futures::stream::iter(0..plan.map_shards)
        .map(|i| async move {
            let done = super::read_done::<MapDone>(staging, plan, Stage::Map, i).await?;
            Ok(done.map(|d| (i, d)))
        })
        .buffer_unordered(MARKER_READS)
        .collect()
        .await;
    let mut out = BTreeMap::new();
    for f in found {
        if let Some((i, done)) = f? {
            out.insert(i, done);
        }
    }
    Ok(out)
}

/// The columns of the outputs: the plan's, then the columns the map shards discovered, sorted
/// by name with `properties_overflow` last (ingest's order), with ids after the plan's last
/// column id. The order depends neither on the order of fetches within a shard nor on which
/// shard finished first, so two identical backfills give identical schemas. A column's type is
/// the one the lowest shard saw; a later conflicting type goes to `properties_overflow`, added
/// when needed.
pub fn union_columns(plan: &Plan, maps: &BTreeMap<usize, MapDone>) -> Result<Vec<TableColumn>> {
    let mut cols = plan.table_columns()?;
    let known: BTreeMap<String, ColumnType> = cols.iter().map(|c| (c.name.clone(), c.ty)).collect();
    let mut found: BTreeMap<String, ColumnType> = BTreeMap::new();
    let mut conflict = false;
    for done in maps.values() {
        for c in &done.columns {
            let ty = super::parse_type(&c.ty)?;
            match known.get(&c.name).or_else(|| found.get(&c.name)) {
                Some(t) if *t == ty => {}
                Some(_) => conflict = true,
                None => {
                    found.insert(c.name.clone(), ty);
                }
            }
        }
    }
    if conflict && !known.contains_key(OVERFLOW_COLUMN) {
        found.insert(OVERFLOW_COLUMN.to_string(), ColumnType::String);
    }
    let mut new: Vec<(String, ColumnType)> = found.into_iter().collect();
    new.sort_by(|a, b| (a.0 == OVERFLOW_COLUMN, &a.0).cmp(&(b.0 == OVERFLOW_COLUMN, &b.0)));
    for ((name, ty), field_id) in new.into_iter().zip(plan.last_column_id + 1..) {
        cols.push(TableColumn { name, field_id, ty });
    }
    Ok(cols)
}

/// An Iceberg schema of `columns` (for the outputs' catalog entries).
pub(crate) fn schema_of(columns: &[TableColumn]) -> Result<Schema> {
    let fields = columns
        .iter()
        .map(|c| Arc::new(crate::schema::field(c.field_id, &c.name, c.ty)))
        .collect::<Vec<_>>();
    Schema::builder()
        .with_schema_id(0)
        .with_fields(fields)
        .build()
        .map_err(|e| Error::iceberg("building the backfill output schema", e))
}

#[allow(clippy::too_many_arguments)]
async fn reduce_attempt(
    options: &ReduceOptions,
    plan: &Plan,
    maps: &BTreeMap<usize, MapDone>,
    columns: &[TableColumn],
    missing: &[usize],
    attempt: &str,
    reporter: &dyn Reporter,
    clock: &dyn Clock,
) -> Result<ReduceDone> {
    let started = Instant::now();
    let j = options.shard;
    let m = plan.reduce_shards;
    // This shard's buckets, each with its part files (rank = map shard: later wins ties).
    let mut buckets: BTreeMap<PartitionValue, Vec<(String, i64, u64, u64)>> = BTreeMap::new();
    for (i, done) in maps {
        for f in &done.files {
            let key = f.key();
            if reduce_shard_of(&key, m) == j {
                buckets
                    .entry(key)
                    .or_default()
                    .push((f.url.clone(), *i as i64, f.bytes, f.rows));
            }
        }
    }
    let warehouse = Location::parse(&plan.warehouse)?;
    let ctx = MergeContext::new(
        &warehouse,
        plan.placement()?,
        columns.to_vec(),
        Arc::new(schema_of(columns)?),
        plan.spec_id,
        options.writer.clone(),
        options.max_rows_per_file,
    )
    .with_output(&plan.output_prefix(), Some(options.target_file_size));
    let mut done = ReduceDone {
        plan_id: plan.plan_id.clone(),
        shard: j,
        of: m,
        attempt: attempt.to_string(),
        maps: maps.keys().copied().collect(),
        missing_maps: missing.to_vec(),
        columns: columns.iter().map(PlannedColumn::of).collect(),
        target_file_size: options.target_file_size,
        max_rows_per_file: options.max_rows_per_file,
        buckets: buckets.len() as u64,
        ..Default::default()
    };
    reporter.phase("reduce", Some(buckets.len() as u64));
    let merged: Vec<(PartitionValue, usize, Result<crate::rewrite::MergedBucket>)> = merge_bounded(
        buckets.into_iter().collect(),
        |(_, files)| files.len(),
        options.parallelism,
        |(key, files)| {
            let ctx = ctx.clone();
            async move {
                let n = files.len();
                let bucket = Bucket { key, files };
                let r = merge_bucket(&bucket, &ctx, None).await;
                (bucket.key, n, r)
            }
        },
        || reporter.advance(1),
    )
    .await;
    reporter.finish_phase();
    let mut failed = BTreeSet::new();
    let mut first_error = None;
    let mut ids: Vec<crate::hash_index::IdHash> = Vec::new();
    for (key, inputs, result) in merged {
        match result {
            Ok(mb) => {
                ids.extend(mb.ids);
                done.inputs += inputs as u64;
                done.rows_in += mb.rows_before;
                done.rows_out += mb.rows_after;
                done.bytes += mb.bytes;
                for (df, size) in mb.files {
                    done.files.push(ReducedFile {
                        url: df.file_path().to_string(),
                        cell: key.cell.clone(),
                        year: key.year,
                        rows: df.record_count(),
                        bytes: size,
                        stats: Some(FileStats::of(&df)?),
                    });
                }
            }
            Err(e) => {
                failed.insert(key.dir());
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        // Written outputs stay unregistered; commit deletes them with the plan's leftovers.
        return Err(Error::Inconsistent(format!(
            "reduce shard {j}: {} bucket(s) could not be merged ({}): {e}",
            failed.len(),
            failed.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    ids.sort_unstable();
    ids.dedup();
    done.distinct_ids = ids.len() as u64;
    let loc = Staging::parse(&options.staging)?
        .attempt(Stage::Reduce, j, attempt)
        .join("ids.bin");
    loc.put_bytes(ids.concat().into()).await?;
    done.ids = Some(loc.url().to_string());
    done.duplicates = done.rows_in - done.rows_out;
    done.files.sort_by(|a, b| a.url.cmp(&b.url));
    done.finished = Some(clock.now());
    done.elapsed_secs = started.elapsed().as_secs_f64();
    done.rows_per_sec = if done.elapsed_secs > 0.0 {
        done.rows_in as f64 / done.elapsed_secs
    } else {
        0.0
    };
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::map::NewColumn;

    fn plan_with(columns: Vec<PlannedColumn>, last: i32) -> Plan {
        serde_json::from_value(serde_json::json!({
            "format": 1, "plan_id": "0123456789abcdef0123456789abcdef",
            "created": "2026-01-01T00:00:00Z",
            "inventory": {"url": "i", "objects": []},
            "suffix": ".stac.json", "since": null, "limit": null, "mode": "all",
            "map_shards": 2, "reduce_shards": 1, "shard_keys": [0, 0], "keys": 0,
            "skipped_known": 0, "malformed": 0, "inventory_stats": {},
            "catalog": "c", "warehouse": "w", "table_uuid": "u",
            "table_properties": {}, "hash_index": "h", "update_hash_index": true,
            "columns": columns, "last_column_id": last, "spec_id": 0
        }))
        .unwrap()
    }

    fn done(cols: &[(&str, &str)]) -> MapDone {
        MapDone {
            columns: cols
                .iter()
                .map(|(n, t)| NewColumn {
                    name: n.to_string(),
                    ty: t.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn an_attempt_that_finishes_second_deletes_its_warehouse_files() {
        let (staging, plan) = crate::backfill::tests::plan_at("memory://reduce-race/s").await;
        let out = |attempt: &str, name: &str| ReduceDone {
            plan_id: plan.plan_id.clone(),
            shard: 1,
            of: 2,
            attempt: attempt.into(),
            files: vec![ReducedFile {
                url: format!("{}/grid_partition=c/year=2020/{name}", plan.warehouse),
                cell: "c".into(),
                year: Some(2020),
                rows: 1,
                bytes: 1,
                stats: None,
            }],
            ..Default::default()
        };
        let first = out("a", "backfill_01234567_0000000a.parquet");
        let second = out("b", "backfill_01234567_0000000b.parquet");
        for d in [&first, &second] {
            Location::parse(&d.files[0].url)
                .unwrap()
                .put_bytes("x".into())
                .await
                .unwrap();
        }
        assert!(
            !publish(&staging, &plan, first.clone())
                .await
                .unwrap()
                .already_done
        );
        let r = publish(&staging, &plan, second.clone()).await.unwrap();
        assert!(r.already_done);
        assert_eq!(r.done.attempt, "a");
        let exists = |url: &str| {
            let url = url.to_string();
            async move {
                Location::parse(&url)
                    .unwrap()
                    .get_bytes_opt()
                    .await
                    .unwrap()
                    .is_some()
            }
        };
        assert!(exists(&first.files[0].url).await);
        assert!(!exists(&second.files[0].url).await);
    }

    #[test]
    fn discovered_columns_join_in_one_order_whatever_the_discovery_order() {
        let plan = plan_with(
            vec![PlannedColumn {
                name: "id".into(),
                field_id: 1,
                ty: "string".into(),
            }],
            30,
        );
        let names = |maps: BTreeMap<usize, MapDone>| -> Vec<(String, i32)> {
            union_columns(&plan, &maps)
                .unwrap()
                .into_iter()
                .map(|c| (c.name, c.field_id))
                .collect()
        };
        // The same discoveries in every permutation of fetch order and shard placement.
        let cols = [("c", "double"), ("a", "string"), ("b", "long")];
        let mut seen = BTreeSet::new();
        for perm in [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ] {
            let ordered: Vec<(&str, &str)> = perm.iter().map(|i| cols[*i]).collect();
            for split in 0..=3 {
                let maps =
                    BTreeMap::from([(0, done(&ordered[..split])), (1, done(&ordered[split..]))]);
                seen.insert(names(maps));
            }
        }
        assert_eq!(seen.len(), 1, "{seen:?}");
        let expected: Vec<(String, i32)> = [("id", 1), ("a", 31), ("b", 32), ("c", 33)]
            .iter()
            .map(|(n, i)| (n.to_string(), *i))
            .collect();
        assert_eq!(seen.into_iter().next().unwrap(), expected);
    }

    #[test]
    fn a_conflicting_type_keeps_the_lowest_shards_and_adds_the_overflow_column() {
        let plan = plan_with(
            vec![PlannedColumn {
                name: "id".into(),
                field_id: 1,
                ty: "string".into(),
            }],
            30,
        );
        let maps = BTreeMap::from([
            (1, done(&[("b", "long"), ("a", "string")])),
            (0, done(&[("a", "string")])),
        ]);
        let cols = union_columns(&plan, &maps).unwrap();
        let got: Vec<(&str, i32)> = cols.iter().map(|c| (c.name.as_str(), c.field_id)).collect();
        assert_eq!(got, [("id", 1), ("a", 31), ("b", 32)]);
        // A conflicting type keeps the first and adds the overflow column.
        let maps = BTreeMap::from([(0, done(&[("a", "long")])), (1, done(&[("a", "string")]))]);
        let cols = union_columns(&plan, &maps).unwrap();
        let got: Vec<(&str, i32)> = cols.iter().map(|c| (c.name.as_str(), c.field_id)).collect();
        assert_eq!(got, [("id", 1), ("a", 31), (OVERFLOW_COLUMN, 32)]);
        assert_eq!(cols[1].ty, ColumnType::Long);
    }
}
