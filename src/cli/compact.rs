//! `earthcatalog compact` and `earthcatalog repair`.

use crate::maintenance::{
    CompactMetrics, CompactOptions, DEFAULT_LEFTOVER_MIN_AGE_HOURS, RepairOptions,
    compact_warehouse, repair,
};
use clap::Args;

use super::progress::{BarReporter, Progress};
use super::{EXIT_OK, EXIT_PARTIAL};

/// The warehouse, catalog and lock flags of `compact` and `repair`.
#[derive(Debug, Args)]
pub struct MaintenanceTarget {
    /// Warehouse root (path, file://, s3://bucket/prefix).
    #[arg(long, default_value = super::ingest::DEFAULT_WAREHOUSE)]
    warehouse: String,
    /// Catalog database (path or s3://…/catalog.db).
    #[arg(long, default_value = super::ingest::DEFAULT_CATALOG)]
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
    /// Delete never-committed files (a killed run's leftovers) only once they are this old
    /// (e.g. 90m, 6h, 2d; 0 = any age: only when no writer can be running). Needs the lock.
    #[arg(long, value_parser = parse_age, default_value_t = Age(chrono::Duration::hours(DEFAULT_LEFTOVER_MIN_AGE_HOURS)))]
    leftover_min_age: Age,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// A minimum age given as `<n>s|m|h|d` (or `0`).
#[derive(Debug, Clone, Copy)]
struct Age(chrono::Duration);

impl std::fmt::Display for Age {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0.num_seconds();
        match secs {
            0 => write!(f, "0"),
            s if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            s if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

fn parse_age(text: &str) -> Result<Age, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Age(chrono::Duration::zero()));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not an age like 90m, 6h or 2d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d (e.g. 6h)")),
    };
    n.checked_mul(secs)
        .and_then(chrono::Duration::try_seconds)
        .map(Age)
        .ok_or_else(|| format!("{text:?} is too large"))
}

pub async fn run(args: CompactArgs, progress: Progress) -> anyhow::Result<u8> {
    let options = CompactOptions {
        warehouse: args.target.warehouse.clone(),
        catalog: args.target.catalog.clone(),
        threshold: args.threshold.max(1),
        use_lock: args.target.lock_wanted(),
        lock_location: args.target.lock_key.clone(),
        dry_run: args.dry_run,
        max_rows_per_file: args.max_rows_per_file,
        parallelism: args.parallelism.max(1),
        leftover_min_age: args.leftover_min_age.0,
        ..CompactOptions::default()
    };
    let reporter = BarReporter::new(&progress);
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
        (
            "registered but missing (run `earthcatalog repair`)",
            &m.missing_files,
        ),
        (
            "unregistered (left alone: younger than --leftover-min-age, no lock, or a foreign \
             name; `earthcatalog repair` registers them, a later locked `compact` deletes \
             leftovers)",
            &m.unregistered_files,
        ),
        ("leftovers deleted", &m.leftovers_deleted),
        ("leftovers a real run would delete", &m.leftovers_to_delete),
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
    /// H3 resolution for rebuilding a table whose metadata is gone from the warehouse (a table
    /// metadata file's grid wins; a different resolution is an error).
    #[arg(long, alias = "h3-resolution")]
    resolution: Option<u8>,
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
        resolution: args.resolution,
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
        if let Some(r) = &m.rebuilt {
            s.push_str(&format!(
                "  table rebuilt: grid {} from {}{}\n",
                r.grid,
                r.source,
                if r.extra_columns.is_empty() {
                    String::new()
                } else {
                    format!(", extra columns {}", r.extra_columns.join(", "))
                }
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_a_unit_and_print_back() {
        for (text, secs) in [
            ("0", 0),
            ("90s", 90),
            ("90m", 5_400),
            ("6h", 21_600),
            ("2d", 172_800),
        ] {
            let age = parse_age(text).unwrap();
            assert_eq!(age.0.num_seconds(), secs, "{text}");
            assert_eq!(parse_age(&age.to_string()).unwrap().0, age.0);
        }
        assert_eq!(Age(chrono::Duration::hours(6)).to_string(), "6h");
        for bad in ["", "6", "h", "6x", "-1h", "99999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
