//! `earthcatalog search`: STAC API item search over the warehouse, streamed to stdout.

use std::io::{Seek, Write};

use crate::query::{ArgStyle, SearchParams, SearchRequest, Warehouse};
use clap::{Args, ValueEnum};
use futures::StreamExt;

use super::files::argument_text;
use super::{EXIT_OK, UsageError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchFormat {
    /// A GeoJSON FeatureCollection, written as items arrive.
    Geojson,
    /// One item per line.
    Ndjson,
    /// A GeoParquet file in the warehouse's own format (needs `--output`).
    Geoparquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FilterLang {
    /// CQL2 text, e.g. `platform = 'LC08'`.
    #[value(name = "cql2-text")]
    Cql2Text,
    /// CQL2 JSON.
    #[value(name = "cql2-json")]
    Cql2Json,
}

/// The search criteria, shared by `search` and `export`.
#[derive(Debug, Args)]
pub struct Criteria {
    /// Items intersecting minx,miny,maxx,maxy (lon/lat); minx > maxx crosses the antimeridian.
    #[arg(long, group = "region", allow_hyphen_values = true)]
    bbox: Option<String>,
    /// Items intersecting a GeoJSON (geometry, Feature, FeatureCollection) or WKT region;
    /// `@path` reads it from a file.
    #[arg(long, group = "region")]
    intersects: Option<String>,
    /// Items intersecting a point lon,lat.
    #[arg(long, group = "region", allow_hyphen_values = true)]
    point: Option<String>,
    /// An instant or an interval `start/end` (`..` or empty for an open end). An item matches
    /// when its start_datetime/end_datetime interval (else its datetime) intersects it.
    #[arg(long)]
    datetime: Option<String>,
    /// Only these ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    ids: Vec<String>,
    /// Only these collections (comma-separated).
    #[arg(long, value_delimiter = ',')]
    collections: Vec<String>,
    /// CQL2 filter, e.g. "percent_valid_pixels > 50 AND platform IN ('LC08','S2A')";
    /// `@path` reads it from a file.
    #[arg(long)]
    filter: Option<String>,
    /// Filter language (default: JSON when the filter starts with `{`, text otherwise).
    #[arg(long, value_enum)]
    filter_lang: Option<FilterLang>,
    /// Sort keys, e.g. `+datetime,-percent_valid_pixels` (collects every match first).
    #[arg(long, allow_hyphen_values = true)]
    sortby: Option<String>,
    /// Cap on the number of items (STAC API page size; there are no pages here).
    #[arg(long)]
    limit: Option<usize>,
    /// Cap on the number of items.
    #[arg(long)]
    max_items: Option<usize>,
    /// Fields to include/exclude, e.g. `id,properties.datetime` or `-assets,-links`.
    #[arg(long, allow_hyphen_values = true)]
    fields: Option<String>,
    /// Keep the `grid_partition` column as a property.
    #[arg(long)]
    with_grid_partition: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    target: super::ReadTarget,
    #[command(flatten)]
    criteria: Criteria,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SearchFormat::Geojson)]
    format: SearchFormat,
    /// Output file for `--format geoparquet` (path or URL).
    #[arg(long)]
    output: Option<String>,
    /// Print search counters (files, row groups, rows) to stderr at the end.
    #[arg(long)]
    stats: bool,
}

impl Criteria {
    /// Validate every argument into a request before touching the catalog.
    pub async fn request(&self) -> anyhow::Result<SearchRequest> {
        let args = self;
        let intersects = match &args.intersects {
            Some(text) => Some(argument_text(text, "--intersects").await?),
            None => None,
        };
        let filter = match &args.filter {
            Some(text) => Some(argument_text(text, "--filter").await?),
            None => None,
        };
        let params = SearchParams {
            intersects,
            bbox: args.bbox.clone(),
            point: args.point.clone(),
            datetime: args.datetime.clone(),
            ids: args.ids.clone(),
            collections: args.collections.clone(),
            filter,
            filter_lang: args.filter_lang.map(|l| {
                match l {
                    FilterLang::Cql2Text => "cql2-text",
                    FilterLang::Cql2Json => "cql2-json",
                }
                .to_string()
            }),
            sortby: args.sortby.clone(),
            limit: args.limit,
            max_items: args.max_items,
            fields: args.fields.clone(),
            with_grid_partition: args.with_grid_partition,
        };
        Ok(params.request(ArgStyle::Flags)?)
    }
}

/// Search output kept in memory before the spool moves to a temporary file.
const SPOOL_MEMORY: usize = 32 << 20;

/// Whether a write failed because the reader went away (treated as success).
fn broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

pub async fn run(args: SearchArgs) -> anyhow::Result<u8> {
    let req = args.criteria.request().await?;
    let wh = args.target.open().await?;
    if args.format == SearchFormat::Geoparquet {
        let output = args
            .output
            .clone()
            .ok_or_else(|| UsageError("--format geoparquet needs --output FILE".into()))?;
        let (items, _) = wh.search_with_stats(&req).await?;
        let n = write_geoparquet(&wh, items, &output).await?;
        eprintln!("{n} items written to {output}");
        return Ok(EXIT_OK);
    }
    // JSON output splices the stored assets/links text instead of parsing it.
    let req = SearchRequest {
        json_text_members: true,
        ..req
    };
    let (mut items, stats) = wh.search_with_stats(&req).await?;
    // The results are spooled (in memory up to SPOOL_MEMORY, then a temporary file) and copied
    // to stdout only when the search finished: an error never leaves half-written output.
    let spool = tempfile::spooled_tempfile(SPOOL_MEMORY);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, spool);
    let geojson = args.format == SearchFormat::Geojson;
    let mut count = 0u64;
    let result: std::io::Result<()> = async {
        if geojson {
            out.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[\n")?;
        }
        while let Some(item) = items.next().await {
            let item = item.map_err(std::io::Error::other)?;
            if geojson && count > 0 {
                out.write_all(b",\n")?;
            }
            crate::query::write_item(&mut out, &item)?;
            if !geojson {
                out.write_all(b"\n")?;
            }
            count += 1;
        }
        if geojson {
            writeln!(out, "\n],\"numberReturned\":{count}}}")?;
        }
        let mut spool = out.into_inner().map_err(|e| e.into_error())?;
        spool.seek(std::io::SeekFrom::Start(0))?;
        let mut stdout = std::io::stdout().lock();
        std::io::copy(&mut spool, &mut stdout)?;
        stdout.flush()
    }
    .await;
    match result {
        Ok(()) => {}
        Err(e) if broken_pipe(&e) => return Ok(EXIT_OK),
        Err(e) => match e.downcast::<crate::Error>() {
            Ok(err) => return Err(err.into()),
            Err(e) => return Err(e.into()),
        },
    }
    if args.stats {
        let s = stats.snapshot();
        eprintln!(
            "{count} items; files {}, row groups {} ({} skipped by statistics), rows scanned {}, \
             geometries decoded {}, rows matched {}, duplicates dropped {}, filter not evaluable \
             on {}",
            s.files,
            s.row_groups,
            s.row_groups_pruned,
            s.rows_scanned,
            s.geometries_decoded,
            s.rows_matched,
            s.duplicates,
            s.filter_errors
        );
    }
    Ok(EXIT_OK)
}

/// Write search results as GeoParquet with the table's columns, in batches of 10,000 rows
/// (bounded memory), to a local temporary file that is then put at `output`.
async fn write_geoparquet(
    wh: &Warehouse,
    mut items: futures::stream::BoxStream<'static, crate::Result<serde_json::Value>>,
    output: &str,
) -> anyhow::Result<u64> {
    use crate::geoparquet::{GeoParquetWriter, WriterOptions};
    let mut encoder = crate::query::ItemEncoder::for_warehouse(wh)?;
    let dest = crate::store::Location::parse(output)?;
    let tmp = tempfile::NamedTempFile::new()?;
    let file = tmp.reopen()?;
    let mut writer =
        GeoParquetWriter::try_new(file, encoder.table(), &WriterOptions::default(), output)?;
    let mut batch = Vec::new();
    let mut total = 0u64;
    loop {
        let next = items.next().await;
        let done = next.is_none();
        if let Some(item) = next {
            batch.push(encoder.row(&item?)?);
        }
        if batch.len() >= crate::query::DEFAULT_BATCH_ROWS || (done && !batch.is_empty()) {
            let refs: Vec<&crate::item::ItemRow> = batch.iter().collect();
            writer.write(&refs, None, encoder.columns())?;
            total += batch.len() as u64;
            batch.clear();
        }
        if done {
            break;
        }
    }
    writer.finish()?;
    // Stream the finished file to its destination (multipart on object stores).
    let mut upload =
        object_store::buffered::BufWriter::new(dest.store().clone(), dest.prefix().clone());
    let mut file = tokio::fs::File::open(tmp.path()).await?;
    tokio::io::copy(&mut file, &mut upload).await?;
    tokio::io::AsyncWriteExt::shutdown(&mut upload).await?;
    Ok(total)
}
