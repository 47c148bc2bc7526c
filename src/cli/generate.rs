//! `earthcatalog generate`: write a synthetic dataset for demos, tests and benchmarks.

use crate::store::Location;
use crate::synth::{SynthOptions, write_dataset};
use clap::Args;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output root: items go to `<out>/items/<key>`, the inventory to `<out>/inventory.csv`.
    #[arg(long)]
    out: String,
    /// Number of items.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Seed (same seed, same items).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of edge-case items after the first 300.
    #[arg(long, default_value_t = 0.05)]
    special_fraction: f64,
    /// Bucket name written into the inventory rows.
    #[arg(long, default_value = "its-live-data")]
    bucket: String,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: GenerateArgs) -> anyhow::Result<u8> {
    let out = Location::parse(&args.out)?;
    let options =
        SynthOptions::new(args.seed, args.count).with_special_fraction(args.special_fraction);
    let summary = write_dataset(
        &options,
        &out.join("items"),
        &args.bucket,
        &out.join("inventory.csv"),
    )
    .await?;
    if args.json {
        super::print_stdout(&format!(
            "{}\n",
            serde_json::json!({"items": summary.items, "special_items": summary.special_items, "bytes": summary.bytes, "inventory": out.url_of("inventory.csv"), "items_root": out.url_of("items")})
        ));
    } else {
        super::print_stdout(&format!(
            "wrote {} items ({} edge cases, {} bytes)\n  items root: {}\n  inventory:  {}\n",
            summary.items,
            summary.special_items,
            summary.bytes,
            out.url_of("items"),
            out.url_of("inventory.csv")
        ));
    }
    Ok(super::EXIT_OK)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShardFormatArg {
    /// Gzipped, header-less, quoted CSV (AWS `CSV`).
    CsvGz,
    /// Parquet (AWS `Parquet`).
    Parquet,
}

#[derive(Debug, Args)]
pub struct GenerateInventoryArgs {
    /// Output root: `<out>/day1/manifest.json`, `<out>/day2/manifest.json`, `<out>/index.parquet`.
    #[arg(long)]
    out: String,
    /// Keys on day 1.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Data files per day.
    #[arg(long, default_value_t = 16)]
    shards: u32,
    /// Share of keys added, changed and removed on day 2 (each).
    #[arg(long, default_value_t = 0.001)]
    churn: f64,
    /// Data file format.
    #[arg(long, value_enum, default_value_t = ShardFormatArg::CsvGz)]
    format: ShardFormatArg,
    /// Bucket named in the rows.
    #[arg(long, default_value = "its-live-data")]
    bucket: String,
}

/// `earthcatalog generate-inventory`: keys-only S3 Inventories of two days and a hash index, for
/// the daily-loop benchmarks.
pub async fn run_inventory(args: GenerateInventoryArgs) -> anyhow::Result<u8> {
    use crate::synth::inventory::{InventoryGen, ShardFormat, write_inventories};
    let out = Location::parse(&args.out)?;
    let spec = InventoryGen {
        keys: args.keys,
        shards: args.shards,
        churn: args.churn,
        format: match args.format {
            ShardFormatArg::CsvGz => ShardFormat::CsvGz,
            ShardFormatArg::Parquet => ShardFormat::Parquet,
        },
        bucket: args.bucket,
    };
    let summary = write_inventories(&spec, &out).await?;
    super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&summary)?));
    Ok(super::EXIT_OK)
}
