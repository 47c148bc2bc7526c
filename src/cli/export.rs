//! `earthcatalog export`: a search's items (no criteria: the whole table) written to one
//! stac-geoparquet or NDJSON file.

use clap::{Args, ValueEnum};

use super::EXIT_OK;
use super::search::Criteria;
use crate::query::{CHUNK_ITEMS, ExportFormat, ExportOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormatArg {
    /// stac-geoparquet: properties as columns, assets/links as structs, bbox struct (the
    /// covering), WKB geometry, the collections in the file's metadata.
    #[value(name = "stac-geoparquet")]
    StacGeoparquet,
    /// One item JSON per line.
    Ndjson,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    target: super::ReadTarget,
    #[command(flatten)]
    criteria: Criteria,
    /// The output file (path or URL, e.g. s3://bucket/items.parquet).
    #[arg(long, short = 'o')]
    output: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormatArg::StacGeoparquet)]
    format: ExportFormatArg,
    /// Items per Parquet row group (also the items held in memory at once).
    #[arg(long, default_value_t = CHUNK_ITEMS)]
    chunk_items: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: ExportArgs) -> anyhow::Result<u8> {
    let request = args.criteria.request().await?;
    let wh = args.target.open().await?;
    let options = ExportOptions {
        out: args.output.clone(),
        format: match args.format {
            ExportFormatArg::StacGeoparquet => ExportFormat::StacGeoparquet,
            ExportFormatArg::Ndjson => ExportFormat::Ndjson,
        },
        chunk_items: args.chunk_items,
    };
    let m = wh.export(&request, &options).await?;
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&m)?));
    } else {
        super::print_stdout(&format!(
            "exported {} items to {} ({}, {} bytes{}) in {:.1}s\n",
            m.items,
            m.out,
            m.format,
            m.bytes,
            if m.columns > 0 {
                format!(", {} columns", m.columns)
            } else {
                String::new()
            },
            m.elapsed_secs
        ));
    }
    Ok(EXIT_OK)
}
