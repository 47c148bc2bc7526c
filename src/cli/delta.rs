//! `earthcatalog delta`: today's inventory keys the warehouse does not hold yet, as the Python
//! tool's `pending/delta_<date>.parquet`.

use crate::delta::{DeltaMetrics, DeltaOptions, run_delta};
use crate::inventory::InventoryOptions;
use clap::Args;

use super::progress::{BarReporter, Progress};
use super::{EXIT_OK, UsageError};

#[derive(Debug, Args)]
pub struct DeltaArgs {
    /// Today's inventory: manifest.json, CSV, CSV.gz or Parquet (path or s3://…).
    #[arg(long)]
    inventory: String,
    /// The warehouse hash index (default: the catalog's, with `--catalog`).
    #[arg(long)]
    hash_index: Option<String>,
    /// Catalog whose table property names the hash index.
    #[arg(long)]
    catalog: Option<String>,
    /// Where deltas live: `<prefix>/pending/delta_<date>.parquet`.
    #[arg(long)]
    delta_prefix: String,
    /// The date in the file name (default: today, UTC).
    #[arg(long)]
    date: Option<String>,
    /// Keep keys ending with this suffix.
    #[arg(long, default_value = crate::inventory::DEFAULT_SUFFIX)]
    suffix: String,
    /// Count only; write and delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Recompute even when today's delta exists.
    #[arg(long)]
    force: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: DeltaArgs, progress: Progress) -> anyhow::Result<u8> {
    let date = match &args.date {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|e| UsageError(format!("--date {d:?}: expected YYYY-MM-DD ({e})")))?,
        None => chrono::Utc::now().date_naive(),
    };
    let hash_index = match (&args.hash_index, &args.catalog) {
        (Some(h), _) => h.clone(),
        (None, Some(c)) => crate::query::Warehouse::open(c, None)
            .await?
            .hash_index_path()
            .ok_or_else(|| UsageError(format!("catalog {c} names no hash index")))?,
        (None, None) => {
            return Err(UsageError("give --hash-index or --catalog".into()).into());
        }
    };
    let options = DeltaOptions {
        inventory: args.inventory.clone(),
        hash_index,
        prefix: args.delta_prefix.clone(),
        date,
        inventory_options: InventoryOptions::default().with_suffix(args.suffix.clone()),
        dry_run: args.dry_run,
        force: args.force,
    };
    let reporter = BarReporter::new(&progress);
    let m = run_delta(&options, &reporter).await?;
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&m)?));
    } else {
        super::print_stdout(&summary(&m));
    }
    Ok(EXIT_OK)
}

fn summary(m: &DeltaMetrics) -> String {
    if m.existing {
        return format!(
            "delta {} exists already ({} rows); nothing done (--force recomputes it)\n",
            m.delta, m.total
        );
    }
    format!(
        "Delta {}{}\n  inventory keys kept:   {}\n  index ids:             {}\n  known (skipped):       {}\n  repeated ids:          {}\n  new:                   {}\n  earlier deltas merged: {} ({} rows carried over, {} now ingested)\n  total:                 {}\n  elapsed:               {:.1}s\n",
        m.date,
        if m.dry_run {
            " (dry run: nothing written or deleted)".to_string()
        } else {
            format!(" → {}", m.delta)
        },
        m.inventory.kept,
        m.index_ids,
        m.skipped_known,
        m.duplicates,
        m.new_items,
        m.previous_deltas.len(),
        m.carried_over,
        m.previous_now_known,
        m.total,
        m.elapsed_secs
    )
}
