//! `earthcatalog stats`: rows, files and bytes per (cell, year).

use std::fmt::Write as _;

use clap::Args;

use super::EXIT_OK;
use super::info::{thousands, year_label};

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    target: super::ReadTarget,
    /// Print a JSON array of {cell, year, rows, files, bytes} (year null when unknown).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: StatsArgs) -> anyhow::Result<u8> {
    let wh = args.target.open().await?;
    let stats = wh.stats().await?;
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&stats)?));
        return Ok(EXIT_OK);
    }
    let mut s = format!(
        "{:<16} {:>7} {:>12} {:>6} {:>14}\n",
        "cell", "year", "rows", "files", "bytes"
    );
    for b in &stats {
        let _ = writeln!(
            s,
            "{:<16} {:>7} {:>12} {:>6} {:>14}",
            b.cell,
            year_label(b.year),
            thousands(b.rows),
            b.files,
            thousands(b.bytes)
        );
    }
    super::print_stdout(&s);
    Ok(EXIT_OK)
}
