//! `earthcatalog compact` and `earthcatalog repair`.

use clap::Args;
use earthcatalog::maintenance::{
    CompactMetrics, CompactOptions, RepairOptions, compact_warehouse, repair,
};

use super::progress::BarReporter;
use super::{EXIT_OK, EXIT_PARTIAL};

/// The warehouse, catalog and lock flags of `compact` and `repair`.
#[derive(Debug, Args)]
pub struct MaintenanceTarget {
    /// Warehouse root (path, file://, s3://bucket/prefix).
    #[arg(long)]
    warehouse: String,
    /// Catalog database (path or s3://…/catalog.db).
    #[arg(long)]
    catalog: String,
    /// Take the catalog lock (the default).
    #[arg(long, conflicts_with = "no_lock")]
    use_lock: bool,
    /// Do not take the catalog lock.
    #[arg(long)]
    no_lock: bool,
    /// Lock object (default: .lock beside the catalog).
    #[arg(long)]
    lock_key: Option<String>,
}

impl MaintenanceTarget {
    /// The lock is taken unless `--no-lock` is given (`--use-lock` is accepted for the Python
    /// tool's flag).
    fn lock_wanted(&self) -> bool {
        self.use_lock || !self.no_lock
    }
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    target: MaintenanceTarget,
    /// Compact buckets with at least this many files.
    #[arg(long, default_value_t = 2)]
    threshold: usize,
    /// Report what would happen; write and delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Split compacted outputs above this many rows.
    #[arg(long)]
    max_rows_per_file: Option<usize>,
    /// Buckets merged concurrently (memory: about one bucket's files and output per bucket).
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: CompactArgs, show_progress: bool) -> anyhow::Result<u8> {
    let options = CompactOptions {
        warehouse: args.target.warehouse.clone(),
        catalog: args.target.catalog.clone(),
        threshold: args.threshold.max(1),
        use_lock: args.target.lock_wanted(),
        lock_location: args.target.lock_key.clone(),
        dry_run: args.dry_run,
        max_rows_per_file: args.max_rows_per_file,
        parallelism: args.parallelism.max(1),
        ..CompactOptions::default()
    };
    let reporter = BarReporter::new(show_progress);
    let m = compact_warehouse(&options, &reporter).await?;
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&m)?));
    } else {
        super::print_stdout(&summary(&m));
    }
    Ok(if m.failed_buckets.is_empty() {
        EXIT_OK
    } else {
        EXIT_PARTIAL
    })
}

fn summary(m: &CompactMetrics) -> String {
    let mut s = format!(
        "Summary{}\n  buckets scanned:    {}\n  buckets compacted:  {}\n  files before/after: {} → {}\n  rows before/after:  {} → {} ({} duplicates removed)\n  bytes before/after: {} → {}\n  elapsed:            {:.1}s\n",
        if m.dry_run {
            " (dry run: nothing written or deleted)"
        } else {
            ""
        },
        m.buckets_scanned,
        m.buckets_compacted,
        m.files_before,
        m.files_after,
        m.rows_before,
        m.rows_after,
        m.duplicates_removed,
        m.bytes_before,
        m.bytes_after,
        m.elapsed_secs
    );
    for (label, list) in [
        ("registered but missing", &m.missing_files),
        (
            "unregistered (run `earthcatalog repair`)",
            &m.unregistered_files,
        ),
        ("leftovers deleted", &m.leftovers_deleted),
    ] {
        if !list.is_empty() {
            s.push_str(&format!("  {label}: {}\n", list.len()));
            for f in list.iter().take(10) {
                s.push_str(&format!("    {f}\n"));
            }
        }
    }
    for f in &m.failed_buckets {
        s.push_str(&format!("  failed bucket {}: {}\n", f.bucket, f.reason));
    }
    s
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    #[command(flatten)]
    target: MaintenanceTarget,
    /// Show additions and removals without committing.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run_repair(args: RepairArgs) -> anyhow::Result<u8> {
    let options = RepairOptions {
        warehouse: args.target.warehouse.clone(),
        catalog: args.target.catalog.clone(),
        use_lock: args.target.lock_wanted(),
        lock_location: args.target.lock_key.clone(),
        dry_run: args.dry_run,
    };
    let m = repair(&options).await?;
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&m)?));
    } else {
        let mut s = format!(
            "repair{}: {} missing file(s) removed, {} unregistered file(s) added, {} skipped\n",
            if m.dry_run { " (dry run)" } else { "" },
            m.removed.len(),
            m.added.len(),
            m.skipped.len()
        );
        for f in &m.removed {
            s.push_str(&format!("  - {f}\n"));
        }
        for f in &m.added {
            s.push_str(&format!("  + {f}\n"));
        }
        for f in &m.skipped {
            s.push_str(&format!("  ! {}: {}\n", f.bucket, f.reason));
        }
        super::print_stdout(&s);
    }
    Ok(if m.skipped.is_empty() {
        EXIT_OK
    } else {
        EXIT_PARTIAL
    })
}
