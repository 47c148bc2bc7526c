//! `earthcatalog generate`: write a synthetic dataset for demos, tests and benchmarks.

use clap::Args;
use earthcatalog::store::Location;
use earthcatalog::synth::{SynthOptions, write_dataset};

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
