//! `earthcatalog backfill plan|map|reduce|commit|status`.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::backfill::{
    self, CommitMetrics, CommitOptions, MapOptions, PlanMetrics, PlanOptions, ReduceOptions,
    StageStatus, StatusReport,
};
use crate::clock::SystemClock;
use crate::fetch::FetchOptions;
use crate::grid::GridConfig;
use crate::inventory::{InventoryOptions, parse_since};
use crate::pipeline::IngestMode;
use clap::{Args, Subcommand};

use super::ingest::{DEFAULT_CATALOG, DEFAULT_WAREHOUSE, ModeArg};
use super::progress::{BarReporter, Progress};
use super::{EXIT_OK, EXIT_PARTIAL, UsageError};

#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(subcommand)]
    command: BackfillCommand,
}

#[derive(Debug, Subcommand)]
enum BackfillCommand {
    /// Read the inventory once, split its keys into map shards, write the plan to --staging.
    Plan(Box<PlanArgs>),
    /// Fetch, parse and fan out one map shard's keys into part files (no lock, no catalog).
    Map(MapArgs),
    /// Merge the part files of one reduce shard's buckets into warehouse files.
    Reduce(ReduceArgs),
    /// Register every reduce output in one commit under the lock; delete the staging.
    Commit(CommitArgs),
    /// Per-stage progress: done, running, failed and pending shards, items, bytes.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// Inventory: CSV, CSV.gz, Parquet or an S3 Inventory manifest.json.
    #[arg(long, short = 'i')]
    inventory: String,
    /// Staging prefix shared by every task (path, s3://bucket/prefix): empty, or holding this
    /// same plan (which is then resumed).
    #[arg(long)]
    staging: String,
    /// Warehouse root.
    #[arg(long, default_value = DEFAULT_WAREHOUSE)]
    warehouse: String,
    /// Catalog database (created with the table when missing, like ingest).
    #[arg(long, default_value = DEFAULT_CATALOG)]
    catalog: String,
    /// Map shards (tasks of the map stage).
    #[arg(long, default_value_t = 8)]
    map_shards: usize,
    /// Reduce shards (tasks of the reduce stage).
    #[arg(long, default_value_t = 2)]
    reduce_shards: usize,
    /// H3 resolution for a new table; must match an existing table.
    #[arg(long)]
    resolution: Option<u8>,
    /// Warehouse layout of a new table: grid_partition or grid/level/tile.
    #[arg(long)]
    layout: Option<String>,
    /// Hash index location (default: table property, else <warehouse>_id_hashes.parquet).
    #[arg(long)]
    hash_index: Option<String>,
    /// Do not use the hash index (plan every key; commit does not record ids).
    #[arg(long)]
    no_hash_index: bool,
    /// `new`: leave out keys whose id the hash index holds; `all`: plan every key.
    #[arg(long, value_enum, default_value_t = ModeArg::New)]
    mode: ModeArg,
    /// Only inventory rows modified at or after this instant.
    #[arg(long)]
    since: Option<String>,
    /// Stop after this many `.stac.json` rows.
    #[arg(long)]
    limit: Option<u64>,
    /// Key suffix kept from the inventory.
    #[arg(long, default_value = ".stac.json")]
    suffix: String,
    /// Do not take the catalog lock (single local user only).
    #[arg(long)]
    no_lock: bool,
    /// Lock object (default: .lock beside the catalog).
    #[arg(long)]
    lock_key: Option<String>,
    /// Where map tasks read item keys instead of s3://<bucket>/ (a path or URL), recorded in
    /// the plan so tasks need only --staging.
    #[arg(long)]
    items_root: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct MapArgs {
    /// Staging prefix of the plan.
    #[arg(long)]
    staging: String,
    /// Shard index; default: JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX or
    /// SLURM_ARRAY_TASK_ID as given (minus EARTHCATALOG_SHARD_BASE for arrays not numbered
    /// from 0).
    #[arg(long)]
    shard: Option<usize>,
    /// Read item keys below this location instead of s3://<bucket>/ (default: the plan's).
    #[arg(long)]
    items_root: Option<String>,
    /// Concurrent item fetches.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Items per chunk (memory bound; one part file per bucket per chunk).
    #[arg(long, default_value_t = 50_000)]
    chunk_items: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ReduceArgs {
    /// Staging prefix of the plan.
    #[arg(long)]
    staging: String,
    /// Shard index; default: the scheduler's index variable (as for map).
    #[arg(long)]
    shard: Option<usize>,
    /// Reduce shards (checked against the plan).
    #[arg(long)]
    of: Option<usize>,
    /// Split outputs at about this many bytes (e.g. 128MB, 512MiB, 1GB).
    #[arg(long, value_parser = parse_size, default_value = "128MiB")]
    target_file_size: u64,
    /// Split outputs above this many rows.
    #[arg(long)]
    max_rows_per_file: Option<usize>,
    /// Buckets merged at once.
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Merge the done map shards even if some are not done (their keys are left out).
    #[arg(long)]
    allow_partial: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CommitArgs {
    /// Staging prefix of the plan.
    #[arg(long)]
    staging: String,
    /// Commit the shards that are done even if some are not (and say which are not).
    #[arg(long)]
    allow_partial: bool,
    /// Do not take the catalog lock (single local user only).
    #[arg(long)]
    no_lock: bool,
    /// Lock object (default: .lock beside the catalog).
    #[arg(long)]
    lock_key: Option<String>,
    /// Buckets merged with the table's files at once.
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// Where the summary and failures reports go (default <warehouse>/_reports).
    #[arg(long)]
    report_dir: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Staging prefix of the plan.
    #[arg(long)]
    staging: String,
    /// Report a running shard failed once its heartbeat is this many seconds old.
    #[arg(long, default_value_t = backfill::DEFAULT_STALE_AFTER_SECS)]
    stale_after_secs: i64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: BackfillArgs, progress: Progress) -> anyhow::Result<u8> {
    let reporter = BarReporter::new(&progress);
    match args.command {
        BackfillCommand::Plan(a) => plan(*a, &reporter).await,
        BackfillCommand::Map(a) => map(a, &reporter).await,
        BackfillCommand::Reduce(a) => reduce(a, &reporter).await,
        BackfillCommand::Commit(a) => commit(a, &reporter).await,
        BackfillCommand::Status(a) => status(a).await,
    }
}

/// `128MB`, `512MiB`, `1GB`, `1048576`: bytes (decimal and binary suffixes).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 128MB, 512MiB)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    let bytes = n * mult;
    if bytes < 1.0 {
        return Err(format!("{s:?} must be at least one byte"));
    }
    Ok(bytes as u64)
}

/// The shard index from the flag or the scheduler's variable.
fn shard(flag: Option<usize>, count: usize) -> anyhow::Result<usize> {
    let (i, source) = backfill::shard_index(flag, count, |k| std::env::var(k).ok())?;
    if let backfill::ShardSource::Env(name) = source {
        tracing::info!(shard = i, from = name, "shard index from the scheduler");
    }
    Ok(i)
}

async fn plan(a: PlanArgs, reporter: &BarReporter) -> anyhow::Result<u8> {
    if let Some(r) = a.resolution.filter(|r| *r > 15) {
        return Err(UsageError(format!("--resolution {r} is out of range 0..=15")).into());
    }
    let since = a
        .since
        .as_deref()
        .map(parse_since)
        .transpose()
        .map_err(|e| UsageError(format!("--since: {e}")))?;
    let options = PlanOptions {
        inventory: a.inventory,
        staging: a.staging,
        catalog: a.catalog,
        warehouse: a.warehouse,
        grid: a.resolution.map(|resolution| GridConfig::H3 { resolution }),
        layout: a
            .layout
            .as_deref()
            .map(crate::partition::Layout::parse)
            .transpose()?,
        hash_index: a.hash_index,
        update_hash_index: !a.no_hash_index,
        mode: match a.mode {
            ModeArg::New => IngestMode::New,
            ModeArg::All => IngestMode::All,
        },
        inventory_options: InventoryOptions::default()
            .with_suffix(a.suffix)
            .with_since(since)
            .with_limit(a.limit),
        map_shards: a.map_shards,
        reduce_shards: a.reduce_shards,
        lock: !a.no_lock,
        lock_location: a.lock_key,
        items_root: a.items_root,
        ..PlanOptions::default()
    };
    let m = backfill::plan(&options, reporter).await?;
    if a.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&m)?));
    } else {
        super::print_stdout(&plan_text(&m));
    }
    Ok(EXIT_OK)
}

fn plan_text(m: &PlanMetrics) -> String {
    let mut s = String::new();
    if m.resumed {
        let _ = writeln!(
            s,
            "backfill plan {} is already at {}: resuming it (its stages skip the shards that are \
             done)",
            m.plan_id, m.plan
        );
    } else {
        let _ = writeln!(s, "backfill plan {} written to {}", m.plan_id, m.plan);
    }
    let _ = writeln!(
        s,
        "  keys:     {} in {} map shards ({}–{} each), {} reduce shards",
        m.keys, m.map_shards, m.shard_keys_min, m.shard_keys_max, m.reduce_shards
    );
    let _ = writeln!(
        s,
        "  skipped:  {} known ids, {} malformed rows",
        m.skipped_known, m.malformed
    );
    let _ = writeln!(s, "  table:    grid {}, layout {}", m.grid, m.layout);
    if let Some(f) = &m.failures_report {
        let _ = writeln!(s, "  failures: {f}");
    }
    s
}

async fn map(a: MapArgs, reporter: &BarReporter) -> anyhow::Result<u8> {
    let count = backfill::Staging::parse(&a.staging)?
        .read_plan()
        .await?
        .map_shards;
    let options = MapOptions {
        staging: a.staging,
        shard: shard(a.shard, count)?,
        fetch: FetchOptions {
            items_root: a.items_root,
        },
        concurrency: a.concurrency.max(1),
        chunk_items: a.chunk_items.max(1),
        ..MapOptions::default()
    };
    let r = backfill::run_map(&options, reporter).await?;
    if a.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&r)?));
    } else if r.already_done {
        super::print_stdout(&format!(
            "map shard {} was done already (attempt {}): nothing to do\n",
            r.done.shard, r.done.attempt
        ));
    } else {
        let d = &r.done;
        super::print_stdout(&format!(
            "map shard {} done in {:.1}s ({:.0} items/s): {} keys, {} items, {} failed, {} rows in {} part files ({} bytes){}\n",
            d.shard,
            d.elapsed_secs,
            d.items_per_sec,
            d.keys,
            d.items,
            d.failed,
            d.rows,
            d.files.len(),
            d.bytes,
            d.failures_report
                .as_deref()
                .map(|f| format!("; failures: {f}"))
                .unwrap_or_default()
        ));
    }
    // Item failures are data (reported by status and commit), not a failed task: a retry
    // would not help.
    Ok(EXIT_OK)
}

async fn reduce(a: ReduceArgs, reporter: &BarReporter) -> anyhow::Result<u8> {
    let count = backfill::Staging::parse(&a.staging)?
        .read_plan()
        .await?
        .reduce_shards;
    let options = ReduceOptions {
        staging: a.staging,
        shard: shard(a.shard, count)?,
        of: a.of,
        target_file_size: a.target_file_size,
        max_rows_per_file: a.max_rows_per_file,
        parallelism: a.parallelism.max(1),
        allow_partial: a.allow_partial,
        ..ReduceOptions::default()
    };
    let mut r = backfill::run_reduce(&options, reporter).await?;
    if a.json {
        // The outputs' catalog statistics are for commit (they stay in the marker): ~1 KB of
        // base64 per output that nobody reads on stdout.
        for f in &mut r.done.files {
            f.stats = None;
        }
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&r)?));
    } else if r.already_done {
        super::print_stdout(&format!(
            "reduce shard {} was done already (attempt {}): nothing to do\n",
            r.done.shard, r.done.attempt
        ));
    } else {
        let d = &r.done;
        super::print_stdout(&format!(
            "reduce shard {}/{} done in {:.1}s ({:.0} rows/s): {} buckets, {} part files, {} → {} rows, {} files ({} bytes)\n",
            d.shard,
            d.of,
            d.elapsed_secs,
            d.rows_per_sec,
            d.buckets,
            d.inputs,
            d.rows_in,
            d.rows_out,
            d.files.len(),
            d.bytes
        ));
    }
    Ok(EXIT_OK)
}

async fn commit(a: CommitArgs, reporter: &BarReporter) -> anyhow::Result<u8> {
    let options = CommitOptions {
        staging: a.staging,
        allow_partial: a.allow_partial,
        lock: !a.no_lock,
        lock_location: a.lock_key,
        parallelism: a.parallelism.max(1),
        report_dir: a.report_dir,
        ..CommitOptions::default()
    };
    let m = backfill::commit(&options, reporter).await?;
    if a.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&m)?));
    } else {
        super::print_stdout(&commit_text(&m, &options));
    }
    Ok(if m.failed > 0 || m.partial {
        EXIT_PARTIAL
    } else {
        EXIT_OK
    })
}

fn commit_text(m: &CommitMetrics, o: &CommitOptions) -> String {
    let mut s = String::new();
    match m.outcome.as_str() {
        "nothing_staged" => {
            let _ = writeln!(
                s,
                "nothing to commit: no backfill plan under {} (committed already, or never planned)",
                o.staging
            );
            return s;
        }
        "already_committed" => {
            let _ = writeln!(
                s,
                "backfill plan {} was committed already (snapshot {}); cleanup finished",
                m.plan_id.as_deref().unwrap_or("-"),
                m.snapshot_id.map_or("-".into(), |i| i.to_string())
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "backfill plan {} committed in {:.1}s: {} (snapshot {})",
                m.plan_id.as_deref().unwrap_or("-"),
                m.elapsed_secs,
                m.operation.as_deref().unwrap_or("nothing"),
                m.snapshot_id.map_or("-".into(), |i| i.to_string())
            );
            let _ = writeln!(
                s,
                "  buckets:  {} ({} new, {} merged with the table's files)",
                m.buckets, m.buckets_added, m.buckets_merged
            );
            let _ = writeln!(
                s,
                "  files:    +{} -{} ({} rows, {} bytes)",
                m.files_added, m.files_replaced, m.rows, m.bytes
            );
        }
    }
    let _ = writeln!(
        s,
        "  items:    {} written, {} failed, {} skipped as known (of {} keys planned)",
        m.items, m.failed, m.skipped_known, m.keys
    );
    for (reason, n) in &m.failures_by_reason {
        let _ = writeln!(s, "    {n:>8}  {reason}");
    }
    if !m.columns_added.is_empty() {
        let _ = writeln!(s, "  schema:   added {}", m.columns_added.join(", "));
    }
    if let Some(total) = m.hash_index_total {
        let _ = writeln!(
            s,
            "  hash index: +{} → {} ids",
            m.hash_index_added.unwrap_or(0),
            total
        );
    }
    let _ = writeln!(
        s,
        "  cleanup:  {} warehouse files, {} staging objects deleted",
        m.files_deleted, m.staging_deleted
    );
    for w in &m.warnings {
        let _ = writeln!(s, "  warning:  {w}");
    }
    if let Some(f) = &m.failures_report {
        let _ = writeln!(s, "  failures: {f}");
    }
    if let Some(r) = &m.summary_report {
        let _ = writeln!(s, "  summary:  {r}");
    }
    s
}

async fn status(a: StatusArgs) -> anyhow::Result<u8> {
    let report = backfill::status(
        &a.staging,
        chrono::Duration::seconds(a.stale_after_secs.max(0)),
        Arc::new(SystemClock).as_ref(),
    )
    .await?;
    if a.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    } else {
        super::print_stdout(&status_text(&report, &a.staging));
    }
    Ok(EXIT_OK)
}

fn stage_text(s: &mut String, name: &str, st: &StageStatus, unit: &str) {
    let _ = writeln!(
        s,
        "  {name:<7} {}/{} done, {} running, {} failed, {} pending; {} {unit}, {} files, {} bytes",
        st.done.len(),
        st.shards,
        st.running.len(),
        st.failed.len(),
        st.pending.len(),
        st.items,
        st.files,
        st.bytes
    );
    for r in &st.running {
        let _ = writeln!(
            s,
            "    running  shard {} on {} since {} (heartbeat {})",
            r.shard,
            r.hostname,
            r.started.to_rfc3339(),
            r.heartbeat.to_rfc3339()
        );
    }
    for f in &st.failed {
        let _ = writeln!(
            s,
            "    failed   shard {} ({} attempt(s)): {}",
            f.shard, f.attempts, f.reason
        );
    }
    if !st.pending.is_empty() {
        let list: Vec<String> = st.pending.iter().map(usize::to_string).collect();
        let _ = writeln!(s, "    pending  shards {}", list.join(", "));
    }
}

fn status_text(r: &StatusReport, staging: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "backfill plan {} ({}), {} keys planned from {}",
        r.plan_id,
        r.created.to_rfc3339(),
        r.keys,
        r.inventory
    );
    stage_text(&mut s, "map", &r.map, "items");
    if r.map.failed_items > 0 {
        let _ = writeln!(s, "    {} keys not ingested so far", r.map.failed_items);
    }
    stage_text(&mut s, "reduce", &r.reduce, "rows");
    let next = if r.ready_to_commit {
        "commit"
    } else if r.ready_to_reduce {
        "reduce"
    } else {
        "map"
    };
    let _ = writeln!(s, "  next:    {next}");
    let (stage, st) = match next {
        "reduce" => ("reduce", &r.reduce),
        "commit" => ("commit", &r.reduce),
        _ => ("map", &r.map),
    };
    if stage != "commit"
        && st.running.is_empty()
        && (!st.failed.is_empty() || !st.pending.is_empty())
    {
        // Nothing runs and shards are missing: the run stopped (a task failed for good, or
        // its later stages were cancelled). One step resumes it.
        let missing: Vec<String> = st
            .failed
            .iter()
            .map(|f| f.shard)
            .chain(st.pending.iter().copied())
            .map(|i| i.to_string())
            .collect();
        let _ = writeln!(
            s,
            "  recover: run the recipe again with the same arguments (deploy/slurm/submit.sh, \
             deploy/aws-batch/submit.sh, deploy/kubernetes/run.sh, or \"Re-run failed jobs\" \
             in GitHub Actions): the plan is resumed and done shards exit 0 at once; or by \
             hand, `earthcatalog backfill {stage} --staging {} --shard I` for I in {}, then \
             the later stages",
            staging,
            missing.join(" ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("128MiB").unwrap(), 128 * 1024 * 1024);
        assert_eq!(parse_size("128MB").unwrap(), 128_000_000);
        assert_eq!(parse_size("1048576").unwrap(), 1_048_576);
        assert_eq!(parse_size("1.5GB").unwrap(), 1_500_000_000);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("0").is_err());
    }
}
