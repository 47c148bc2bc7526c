//! Write the bundled example data set: synthetic ITS_LIVE velocity-pair STAC items and an S3
//! inventory CSV that lists them.
//!
//! ```text
//! cargo run --example make_example_data -- <out dir> [count=300] [seed=42]
//! ```
//!
//! writes
//!
//! * `<out>/items/<key>`: one pretty-printed STAC item per object, where `<key>` is the key the
//!   item would have in the ITS_LIVE bucket, e.g.
//!   `velocity_image_pair/landsatOLI/v02/N60W150/<id>.stac.json`;
//! * `<out>/inventory.csv`: header `bucket,key,size,last_modified_date`, then one row per item
//!   with bucket `its-live-data`, the same `<key>`, the object size and the item's `updated`
//!   time.
//!
//! The rows name the real bucket, so the inventory reads exactly like a production one: ingest
//! resolves each row to `s3://its-live-data/<key>`. To ingest the local copy instead, run the
//! pipeline with `--items-root <out>/items`, which fetches `<items-root>/<key>` for every row
//! (the bucket name is then ignored), e.g.
//!
//! ```text
//! earthcatalog ingest --inventory <out>/inventory.csv --items-root <out>/items …
//! ```
//!
//! With the default count (300) every edge case of `earthcatalog::synth::SpecialKind` is present,
//! each at its fixed index (see the `synth` module docs). The same arguments always produce
//! byte-identical files.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use earthcatalog::store::Location;
use earthcatalog::synth::{SynthOptions, write_dataset};

const USAGE: &str = "usage: make_example_data <out dir> [count=300] [seed=42]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, count, seed) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&out, count, seed).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<(String, u64, u64), String> {
    let out = match args.first() {
        Some(out) if !out.starts_with('-') => out.trim_end_matches('/').to_string(),
        _ => return Err("missing <out dir>".to_string()),
    };
    if args.len() > 3 {
        return Err(format!("unexpected argument {:?}", args[3]));
    }
    let number = |i: usize, name: &str, default: u64| -> Result<u64, String> {
        match args.get(i) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("{name} must be a non-negative integer, got {text:?}")),
        }
    };
    Ok((out, number(1, "count", 300)?, number(2, "seed", 42)?))
}

async fn run(out: &str, count: u64, seed: u64) -> earthcatalog::Result<()> {
    let options = SynthOptions::new(seed, count);
    let items = Location::parse(&format!("{out}/items"))?;
    let inventory = Location::parse(&format!("{out}/inventory.csv"))?;
    let summary = write_dataset(&options, &items, "its-live-data", &inventory).await?;
    eprintln!(
        "wrote {} items ({} edge cases, {} bytes) to {} and {} inventory rows to {}",
        summary.items,
        summary.special_items,
        summary.bytes,
        items.url(),
        summary.inventory_rows,
        inventory.url()
    );
    Ok(())
}
