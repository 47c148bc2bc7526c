//! `earthcatalog gc`: remove the rows of items whose source keys disappeared.

use crate::maintenance::gc::{GcMetrics, GcOptions, gc};
use clap::Args;

use super::EXIT_OK;
use super::progress::{BarReporter, Progress};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Warehouse root (path, file://, s3://bucket/prefix).
    #[arg(long, default_value = super::ingest::DEFAULT_WAREHOUSE)]
    warehouse: String,
    /// Catalog database (path or s3://…/catalog.db).
    #[arg(long, default_value = super::ingest::DEFAULT_CATALOG)]
    catalog: String,
    /// The keys that disappeared: a `diff --removed` file or any inventory listing them.
    #[arg(long)]
    removed: String,
    /// The id of a key is its basename minus this suffix.
    #[arg(long, default_value = crate::inventory::DEFAULT_SUFFIX)]
    suffix: String,
    /// Hash index (default: the table property, else <warehouse>_id_hashes.parquet).
    #[arg(long)]
    hash_index: Option<String>,
    /// Do not take the catalog lock.
    #[arg(long)]
    no_lock: bool,
    /// Lock object (default: .lock beside the catalog).
    #[arg(long)]
    lock_key: Option<String>,
    /// Report what would be removed; write and delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Buckets rewritten concurrently.
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: GcArgs, progress: Progress) -> anyhow::Result<u8> {
    let options = GcOptions {
        warehouse: args.warehouse,
        catalog: args.catalog,
        removed: args.removed,
        suffix: args.suffix,
        hash_index: args.hash_index,
        use_lock: !args.no_lock,
        lock_location: args.lock_key,
        dry_run: args.dry_run,
        parallelism: args.parallelism.max(1),
        ..GcOptions::default()
    };
    let reporter = BarReporter::new(&progress);
    let m = gc(&options, &reporter).await?;
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&m)?));
    } else {
        super::print_stdout(&summary(&m));
    }
    Ok(EXIT_OK)
}

fn summary(m: &GcMetrics) -> String {
    let mut s = format!(
        "gc{}\n  gone ids:        {} ({} in the table, {} not found)\n  files scanned:   {}\n  files rewritten: {} → {}\n  rows removed:    {}\n  snapshot:        {}\n  elapsed:         {:.1}s\n",
        if m.dry_run {
            " (dry run: nothing written or deleted)"
        } else {
            ""
        },
        m.gone_ids,
        m.ids_removed,
        m.ids_not_found,
        m.files_scanned,
        m.files_affected,
        m.files_written,
        m.rows_removed,
        m.snapshot_id.map_or("-".to_string(), |s| s.to_string()),
        m.elapsed_secs
    );
    if let Some(t) = m.hash_index_total {
        s.push_str(&format!("  hash index:      {t} ids\n"));
    }
    for w in &m.warnings {
        s.push_str(&format!("  warning:         {w}\n"));
    }
    s
}
