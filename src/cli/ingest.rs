//! `earthcatalog ingest`.

use crate::fetch::FetchOptions;
use crate::grid::GridConfig;
use crate::inventory::{InventoryOptions, parse_since};
use crate::pipeline::{IngestMetrics, IngestOptions, ingest};
use clap::Args;

use super::config::ConfigFile;
use super::progress::{BarReporter, Progress};
use super::{EXIT_OK, EXIT_PARTIAL, UsageError};

/// Default warehouse when neither flag nor config names one.
pub const DEFAULT_WAREHOUSE: &str = "earthcatalog-data/warehouse";
/// Default catalog when neither flag nor config names one.
pub const DEFAULT_CATALOG: &str = "earthcatalog-data/catalog.db";

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Inventory: CSV, CSV.gz, Parquet or an S3 Inventory manifest.json (path or URL).
    #[arg(long, short = 'i')]
    inventory: String,
    /// Warehouse root (path, file://, s3://bucket/prefix).
    #[arg(long)]
    warehouse: Option<String>,
    /// Catalog database (path or s3://…/catalog.db).
    #[arg(long)]
    catalog: Option<String>,
    /// YAML config with catalog/grid/ingest sections; flags override it.
    #[arg(long, short = 'c')]
    config: Option<String>,
    /// H3 resolution (0–15) for a new table; must match an existing table.
    #[arg(long, alias = "h3-resolution")]
    resolution: Option<u8>,
    /// Grid type: h3 or geojson.
    #[arg(long)]
    grid: Option<String>,
    /// GeoJSON FeatureCollection of regions (with --grid geojson).
    #[arg(long)]
    boundaries: Option<String>,
    /// Region property used as the partition key (with --grid geojson).
    #[arg(long)]
    id_field: Option<String>,
    /// Only inventory rows modified at or after this instant (date or RFC 3339; offsets converted).
    #[arg(long)]
    since: Option<String>,
    /// Stop after this many `.stac.json` rows.
    #[arg(long)]
    limit: Option<u64>,
    /// Concurrent item fetches.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Items per chunk (one file per (cell, year) per chunk).
    #[arg(long, alias = "chunk-size")]
    chunk_items: Option<usize>,
    /// Commit after every N chunks (default: one commit at the end).
    #[arg(long)]
    commit_every: Option<usize>,
    /// Commit early once this many data files are pending (bounds memory on huge runs).
    #[arg(long, default_value_t = 5_000)]
    max_files_per_commit: usize,
    /// Read item keys below this location instead of s3://<bucket>/ (local mirrors, examples).
    #[arg(long)]
    items_root: Option<String>,
    /// Key suffix kept from the inventory.
    #[arg(long, default_value = ".stac.json")]
    suffix: String,
    /// Hash index location (default: table property, else <warehouse>_id_hashes.parquet).
    #[arg(long)]
    hash_index: Option<String>,
    /// Do not use the hash index (fetch every key, do not record the ingested ids).
    #[arg(long)]
    no_hash_index: bool,
    /// Warehouse layout of a new table: `grid_partition` (grid_partition=<cell>/year=<yyyy>/,
    /// the default) or `grid/level/tile` (grid=h3/level=<res>/tile=<cell>/year=<yyyy>/). An
    /// existing table keeps its own; a different value is an error.
    #[arg(long)]
    layout: Option<String>,
    /// `new`: skip keys whose id (basename minus the suffix) the hash index holds, before
    /// fetching; `all`: fetch every listed key (e.g. a diff's changed keys).
    #[arg(long, value_enum, default_value_t = ModeArg::New)]
    mode: ModeArg,
    /// Do not take the catalog lock (single local user only).
    #[arg(long)]
    no_lock: bool,
    /// Lock object (default: .lock beside the catalog).
    #[arg(long)]
    lock_key: Option<String>,
    /// Where the summary and failures reports go (default <warehouse>/_reports).
    #[arg(long)]
    report_dir: Option<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Skip ids the hash index holds.
    New,
    /// Fetch every listed key.
    All,
}

fn resolve(args: &IngestArgs, cfg: ConfigFile) -> anyhow::Result<IngestOptions> {
    let grid_type = args
        .grid
        .clone()
        .or(cfg.grid.grid_type.clone())
        .unwrap_or_else(|| "h3".into());
    let explicit_grid = args.grid.is_some()
        || args.resolution.is_some()
        || args.boundaries.is_some()
        || cfg.grid.grid_type.is_some()
        || cfg.grid.resolution.is_some();
    let grid = match grid_type.as_str() {
        "h3" => {
            let res = args.resolution.or(cfg.grid.resolution);
            if let Some(r) = res.filter(|r| *r > 15) {
                return Err(UsageError(format!("--resolution {r} is out of range 0..=15")).into());
            }
            explicit_grid.then(|| GridConfig::H3 {
                resolution: res.unwrap_or(1),
            })
        }
        "geojson" => {
            let path = args
                .boundaries
                .clone()
                .or(cfg.grid.boundaries_path.clone())
                .ok_or_else(|| UsageError("--grid geojson needs --boundaries FILE".into()))?;
            Some(GridConfig::GeoJson {
                boundaries_path: path,
                id_field: args
                    .id_field
                    .clone()
                    .or(cfg.grid.id_field.clone())
                    .unwrap_or_else(|| "id".into()),
            })
        }
        "s2" => return Err(UsageError("grid type s2 is not supported".into()).into()),
        other => {
            return Err(UsageError(format!("unknown grid type {other:?} (h3 or geojson)")).into());
        }
    };
    let since = args
        .since
        .clone()
        .or(cfg.ingest.since.clone())
        .map(|s| parse_since(&s).map_err(|e| UsageError(format!("--since: {e}"))))
        .transpose()?;
    let mut options = IngestOptions {
        inventory: args.inventory.clone(),
        warehouse: args
            .warehouse
            .clone()
            .or(cfg.catalog.warehouse.clone())
            .unwrap_or_else(|| DEFAULT_WAREHOUSE.into()),
        catalog: args
            .catalog
            .clone()
            .or(cfg.catalog.db_path.clone())
            .unwrap_or_else(|| DEFAULT_CATALOG.into()),
        grid,
        hash_index: args
            .hash_index
            .clone()
            .or(cfg.catalog.hash_index_path.clone()),
        layout: args
            .layout
            .as_deref()
            .map(crate::partition::Layout::parse)
            .transpose()?,
        update_hash_index: !args.no_hash_index,
        mode: match args.mode {
            ModeArg::New => crate::pipeline::IngestMode::New,
            ModeArg::All => crate::pipeline::IngestMode::All,
        },
        inventory_options: InventoryOptions::default()
            .with_suffix(args.suffix.clone())
            .with_since(since)
            .with_limit(args.limit),
        fetch: FetchOptions {
            items_root: args.items_root.clone().or(cfg.ingest.items_root.clone()),
        },
        concurrency: cfg
            .ingest
            .concurrency
            .or(cfg.ingest.max_workers)
            .unwrap_or(args.concurrency)
            .max(1),
        commit_every: args.commit_every.or(cfg.ingest.commit_every),
        max_files_per_commit: args.max_files_per_commit.max(1),
        lock: !args.no_lock,
        lock_location: args.lock_key.clone(),
        report_dir: args.report_dir.clone(),
        ..IngestOptions::default()
    };
    if args.concurrency != 256 {
        options.concurrency = args.concurrency.max(1);
    }
    if let Some(n) = args.chunk_items.or(cfg.ingest.chunk_size) {
        if n == 0 {
            return Err(UsageError("--chunk-items must be positive".into()).into());
        }
        options.chunk_items = n;
    }
    if cfg.ingest.batch_add_files == Some(false) && options.commit_every.is_none() {
        options.commit_every = Some(1);
    }
    Ok(options)
}

pub async fn run(args: IngestArgs, progress: Progress) -> anyhow::Result<u8> {
    let cfg = match &args.config {
        Some(path) => ConfigFile::load(path).await?,
        None => ConfigFile::default(),
    };
    let options = resolve(&args, cfg)?;
    let reporter = BarReporter::new(&progress);
    let metrics = ingest(&options, &reporter).await?;
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&metrics)?));
    } else {
        super::print_stdout(&summary_text(&metrics, &options));
    }
    Ok(if metrics.failed > 0 {
        EXIT_PARTIAL
    } else {
        EXIT_OK
    })
}

fn summary_text(m: &IngestMetrics, o: &IngestOptions) -> String {
    let years = {
        let known: Vec<i32> = m.years.iter().flatten().copied().collect();
        let unknown = m.years.iter().any(Option::is_none);
        match (known.first(), known.last()) {
            (Some(a), Some(b)) => format!("{a}–{b}{}", if unknown { " + unknown" } else { "" }),
            _ if unknown => "unknown".to_string(),
            _ => "-".to_string(),
        }
    };
    let mut s = String::new();
    s.push_str(&format!(
        "ingest {} done in {:.1}s ({:.0} items/s)\n",
        m.run_id, m.elapsed_secs, m.items_per_sec
    ));
    s.push_str(&format!(
        "  catalog:    {}\n  warehouse:  {}\n  grid:       {}\n",
        o.catalog, o.warehouse, m.grid
    ));
    s.push_str(&format!(
        "  inventory:  {} rows, {} kept, {} skipped by suffix, {} by --since, {} fail-open, {} malformed{}\n",
        m.inventory.rows, m.inventory.kept, m.inventory.skipped_suffix, m.inventory.skipped_since,
        m.inventory.since_unknown, m.inventory.malformed, if m.inventory.limited { " (limit reached)" } else { "" }
    ));
    s.push_str(&format!(
        "  items:      {} fetched, {} ingested, {} failed, {} skipped as known (mode {})\n",
        m.fetched,
        m.items,
        m.failed,
        m.skipped_known,
        match m.mode {
            crate::pipeline::IngestMode::New => "new",
            crate::pipeline::IngestMode::All => "all",
        }
    ));
    if m.id_mismatch > 0 {
        s.push_str(&format!(
            "  ids:        {} items have an id other than their key's basename (indexed by id)\n",
            m.id_mismatch
        ));
        for (key, id) in &m.id_mismatch_sample {
            s.push_str(&format!("    {key} → {id}\n"));
        }
    }
    for (reason, n) in &m.failures_by_reason {
        s.push_str(&format!("    {n:>8}  {reason}\n"));
    }
    s.push_str(&format!(
        "  rows:       {} in {} files ({} bytes), {} cells, years {}\n",
        m.rows, m.files, m.bytes, m.cells, years
    ));
    if !m.schema_columns_added.is_empty() {
        s.push_str(&format!(
            "  schema:     added {}\n",
            m.schema_columns_added.join(", ")
        ));
    }
    let p = &m.parse;
    if p.overflow_values
        + p.datetime_date_only
        + p.datetime_naive
        + p.datetime_missing
        + p.datetime_unparsable
        + p.null_geometry
        > 0
    {
        s.push_str(&format!(
            "  conversions: {} overflow values, {} date-only, {} naive, {} missing, {} unparsable datetimes, {} null geometries\n",
            p.overflow_values, p.datetime_date_only, p.datetime_naive, p.datetime_missing, p.datetime_unparsable, p.null_geometry
        ));
    }
    s.push_str(&format!(
        "  commits:    {} (snapshot {})\n",
        m.commits,
        m.snapshot_id.map_or("-".to_string(), |id| id.to_string())
    ));
    match &m.index_reconciled {
        Some(crate::hash_index::Reconciled::Extended {
            snapshots, added, ..
        }) => s.push_str(&format!(
            "  hash index: was {snapshots} snapshot(s) behind the catalog; {added} ids added\n"
        )),
        Some(crate::hash_index::Reconciled::Rebuilt { reason, total }) => s.push_str(&format!(
            "  hash index: rebuilt from the table ({total} ids): {reason}\n"
        )),
        _ => {}
    }
    if let Some(total) = m.hash_index_total {
        s.push_str(&format!(
            "  hash index: +{} → {} ids ({})\n",
            m.hash_index_added.unwrap_or(0),
            total,
            m.hash_index_path
        ));
    }
    for w in &m.warnings {
        s.push_str(&format!("  warning:    {w}\n"));
    }
    if let Some(f) = &m.failures_report {
        s.push_str(&format!("  failures:   {f}\n"));
    }
    if let Some(r) = &m.summary_report {
        s.push_str(&format!("  summary:    {r}\n"));
    }
    s
}
