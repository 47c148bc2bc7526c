//! `earthcatalog files`: the data files that can hold items of a region and time range.

use crate::query::{cell_list_sql, parse_bbox, parse_datetime, parse_geometry, parse_point};
use crate::store::Location;
use clap::{Args, ValueEnum};
use geo_types::Geometry;

use super::{EXIT_OK, UsageError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FilesFormat {
    /// One path per line.
    Paths,
    /// A JSON array of paths.
    Json,
    /// The `grid_partition IN (...)` SQL fragment of the query's cells.
    Sql,
    /// A DuckDB `read_parquet([...])` expression over the files.
    Duckdb,
}

#[derive(Debug, Args)]
pub struct FilesArgs {
    #[command(flatten)]
    target: super::ReadTarget,
    /// Region as GeoJSON (geometry, Feature or FeatureCollection) or WKT; `@path` reads it from a file.
    #[arg(long, group = "region")]
    intersects: Option<String>,
    /// Region as minx,miny,maxx,maxy (lon/lat); minx > maxx crosses the antimeridian.
    #[arg(long, group = "region", allow_hyphen_values = true)]
    bbox: Option<String>,
    /// Region as a point lon,lat.
    #[arg(long, group = "region", allow_hyphen_values = true)]
    point: Option<String>,
    /// Files that may hold items whose time (start_datetime/end_datetime interval, else
    /// datetime) reaches at or after this instant (date or datetime; naive = UTC).
    #[arg(long)]
    start: Option<String>,
    /// Files that may hold items whose time starts at or before this instant.
    #[arg(long)]
    end: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FilesFormat::Paths)]
    format: FilesFormat,
}

/// The text of an argument; `@path` reads it from a file (local or URL).
pub(super) async fn argument_text(text: &str, arg: &str) -> anyhow::Result<String> {
    match text.strip_prefix('@') {
        Some(path) => {
            let bytes = Location::parse(path)?
                .get_bytes()
                .await
                .map_err(|e| UsageError(format!("{arg}: cannot read {path}: {e}")))?;
            Ok(String::from_utf8(bytes.to_vec())
                .map_err(|_| UsageError(format!("{arg}: {path} is not UTF-8 text")))?)
        }
        None => Ok(text.to_string()),
    }
}

async fn region(args: &FilesArgs) -> anyhow::Result<Option<Geometry<f64>>> {
    if let Some(text) = &args.intersects {
        let text = argument_text(text, "--intersects").await?;
        return Ok(Some(parse_geometry(&text, "--intersects")?));
    }
    if let Some(b) = &args.bbox {
        return Ok(Some(parse_bbox(b, "--bbox")?));
    }
    if let Some(p) = &args.point {
        return Ok(Some(parse_point(p, "--point")?));
    }
    Ok(None)
}

/// A path DuckDB can open: `file:///x` → `/x`.
fn duckdb_path(path: &str) -> String {
    path.strip_prefix("file://").unwrap_or(path).to_string()
}

fn sql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub async fn run(args: FilesArgs) -> anyhow::Result<u8> {
    // Validate every argument before touching the catalog.
    let geometry = region(&args).await?;
    let start = args
        .start
        .as_deref()
        .map(|s| parse_datetime(s, "--start"))
        .transpose()?;
    let end = args
        .end
        .as_deref()
        .map(|s| parse_datetime(s, "--end"))
        .transpose()?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(UsageError(format!("--start {s} is after --end {e}")).into());
    }
    if args.format == FilesFormat::Sql && geometry.is_none() {
        return Err(UsageError(
            "--format sql lists the query's cells: give --intersects, --bbox or --point".into(),
        )
        .into());
    }
    let wh = args.target.open().await?;
    if args.format == FilesFormat::Sql {
        let cells = match &geometry {
            Some(g) => wh.cells_for_geometry(g).await?,
            None => Default::default(),
        };
        super::print_stdout(&format!("{}\n", cell_list_sql(&cells)));
        return Ok(EXIT_OK);
    }
    let paths = wh.file_paths(geometry.as_ref(), start, end).await?;
    let out = match args.format {
        FilesFormat::Paths => paths.iter().map(|p| format!("{p}\n")).collect(),
        FilesFormat::Json => format!("{}\n", serde_json::to_string_pretty(&paths)?),
        FilesFormat::Duckdb => {
            if paths.is_empty() {
                tracing::warn!("no file matches; DuckDB rejects an empty read_parquet list");
            }
            let list: Vec<String> = paths.iter().map(|p| sql_quote(&duckdb_path(p))).collect();
            format!("read_parquet([{}])\n", list.join(", "))
        }
        FilesFormat::Sql => unreachable!("handled above"),
    };
    super::print_stdout(&out);
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdb_paths_are_plain_and_quoted() {
        assert_eq!(duckdb_path("file:///tmp/a.parquet"), "/tmp/a.parquet");
        assert_eq!(duckdb_path("s3://b/k.parquet"), "s3://b/k.parquet");
        assert_eq!(sql_quote("it's"), "'it''s'");
    }
}
