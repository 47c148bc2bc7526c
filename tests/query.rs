//! Query and inspect a warehouse built by the library ingest from synthetic items.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::BTreeSet;
use std::path::Path;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use earthcatalog::fetch::FetchOptions;
use earthcatalog::grid::GridConfig;
use earthcatalog::pipeline::{IngestMetrics, IngestOptions, ingest};
use earthcatalog::query::{Warehouse, parse_bbox, parse_geometry};
use earthcatalog::report::NoReporter;
use earthcatalog::store::Location;
use earthcatalog::synth::{SpecialKind, Synth, SynthOptions, write_dataset};
use geo_types::{Geometry, Point};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const SEED: u64 = 11;
const ITEMS: u64 = 300;

struct Fixture {
    _dir: tempfile::TempDir,
    catalog: String,
    warehouse: String,
    metrics: IngestMetrics,
}

async fn build() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = Location::parse(dir.path().join("data").to_str().unwrap()).unwrap();
    let options = SynthOptions::new(SEED, ITEMS);
    write_dataset(
        &options,
        &data.join("items"),
        "its-live-data",
        &data.join("inventory.csv"),
    )
    .await
    .unwrap();
    // One item with no time at all (no datetime, no interval): it goes to year=unknown, which
    // info and stats report as a null year.
    let timeless = Synth::new(options.clone()).item_at(SpecialKind::MissingDatetime.forced_index());
    let mut json = timeless.json.clone();
    let props = json["properties"].as_object_mut().unwrap();
    props.remove("start_datetime");
    props.remove("end_datetime");
    std::fs::write(
        dir.path().join("data").join("items").join(&timeless.key),
        serde_json::to_vec(&json).unwrap(),
    )
    .unwrap();
    let catalog = dir.path().join("catalog.db").to_str().unwrap().to_string();
    let warehouse = dir.path().join("warehouse").to_str().unwrap().to_string();
    let metrics = ingest(
        &IngestOptions {
            inventory: data.url_of("inventory.csv"),
            warehouse: warehouse.clone(),
            catalog: catalog.clone(),
            fetch: FetchOptions {
                items_root: Some(data.url_of("items")),
            },
            lock: false,
            grid: Some(GridConfig::H3 { resolution: 2 }),
            // Several chunks, so some buckets get more than one file.
            chunk_items: 100,
            ..Default::default()
        },
        &NoReporter,
    )
    .await
    .unwrap();
    assert_eq!(metrics.failed, 0, "{metrics:?}");
    assert!(metrics.files > 0 && metrics.rows > 0);
    Fixture {
        _dir: dir,
        catalog,
        warehouse,
        metrics,
    }
}

/// The ids in a data file (path as registered).
fn ids_in(path: &str) -> BTreeSet<String> {
    let local = path.strip_prefix("file://").unwrap_or(path);
    let file = std::fs::File::open(Path::new(local)).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let mut ids = BTreeSet::new();
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        let col = batch.column_by_name("id").unwrap();
        let col = arrow_cast::cast(col, &arrow_schema::DataType::Utf8).unwrap();
        let col = col.as_string::<i32>();
        for i in 0..col.len() {
            if col.is_valid(i) {
                ids.insert(col.value(i).to_string());
            }
        }
    }
    ids
}

/// Whether some row of the file has a temporal extent (start/end interval, else datetime)
/// intersecting `[lo, hi]` — brute force over the stored rows.
fn holds_time_match(path: &str, lo: Option<DateTime<Utc>>, hi: Option<DateTime<Utc>>) -> bool {
    let local = path.strip_prefix("file://").unwrap_or(path);
    let file = std::fs::File::open(Path::new(local)).unwrap();
    let (lo, hi) = (
        lo.map(|t| t.timestamp_micros()),
        hi.map(|t| t.timestamp_micros()),
    );
    for batch in ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
    {
        let batch = batch.unwrap();
        let col = |name: &str| {
            batch.column_by_name(name).map(|c| {
                c.as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                    .clone()
            })
        };
        let (d, s, e) = (col("datetime"), col("start_datetime"), col("end_datetime"));
        let at = |a: &Option<arrow_array::TimestampMicrosecondArray>, i: usize| {
            a.as_ref().and_then(|a| a.is_valid(i).then(|| a.value(i)))
        };
        for i in 0..batch.num_rows() {
            let (first, last) = match (at(&s, i), at(&e, i), at(&d, i)) {
                (Some(s), Some(e), _) => (Some(s), Some(e)),
                (_, _, Some(d)) => (Some(d), Some(d)),
                (None, None, None) => continue,
                (s, e, None) => (s, e),
            };
            if first.is_none_or(|f| hi.is_none_or(|h| f <= h))
                && last.is_none_or(|l| lo.is_none_or(|lo| l >= lo))
            {
                return true;
            }
        }
    }
    false
}

fn year_of(path: &str) -> Option<i32> {
    let part = path.split('/').find(|p| p.starts_with("year="))?;
    part.trim_start_matches("year=").parse().ok()
}

/// A regular polygon item of the data set: (id, first footprint vertex, UTC year).
fn known_item() -> (String, (f64, f64), i32) {
    let synth = Synth::new(SynthOptions::new(SEED, ITEMS));
    let item = synth.item_at(0);
    assert!(item.special.is_none());
    let id = item.json["id"].as_str().unwrap().to_string();
    let ring = &item.json["geometry"]["coordinates"][0][0];
    let vertex = (ring[0].as_f64().unwrap(), ring[1].as_f64().unwrap());
    let dt: DateTime<Utc> = item.json["properties"]["datetime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (id, vertex, dt.year())
}

fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<DateTime<Utc>> {
    Some(Utc.with_ymd_and_hms(y, m, d, h, mi, s).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_stats_and_file_pruning_on_an_ingested_warehouse() {
    let fx = build().await;
    let wh = Warehouse::open(&fx.catalog, None).await.unwrap();

    // Info: totals equal what ingest wrote; grid from the table properties.
    let info = wh.info().await.unwrap();
    assert!(info.table_exists);
    assert_eq!(info.rows, fx.metrics.rows);
    assert_eq!(info.files, fx.metrics.files);
    assert_eq!(info.bytes, fx.metrics.bytes);
    assert_eq!(info.distinct_cells, fx.metrics.cells);
    assert_eq!(
        (info.grid_type.as_str(), info.grid_resolution),
        ("h3", Some(2))
    );
    assert_eq!(
        info.snapshot.as_ref().unwrap().id,
        fx.metrics.snapshot_id.unwrap()
    );
    assert_eq!(info.snapshot.as_ref().unwrap().operation, "append");
    assert!(info.snapshot_count >= 1);
    let warehouse_url = Location::parse(&fx.warehouse).unwrap().url().to_string();
    assert_eq!(info.warehouse.as_deref(), Some(warehouse_url.as_str()));
    assert!(
        info.table_location
            .as_deref()
            .unwrap()
            .ends_with("/earthcatalog/stac_items")
    );
    assert_eq!(info.hash_index_rows, fx.metrics.hash_index_total);
    assert!(info.hash_index_rows.unwrap() > 0);
    assert!(
        info.years.iter().any(|y| y.year.is_none()),
        "null-year rows are reported"
    );
    assert_eq!(info.years.iter().map(|y| y.rows).sum::<u64>(), info.rows);
    assert!(info.top_buckets.len() <= 15 && !info.top_buckets.is_empty());
    assert!(info.top_buckets.windows(2).all(|w| w[0].rows >= w[1].rows));
    assert!(info.schema.iter().filter(|f| !f.evolved).count() == 28);
    assert!(
        info.schema.iter().any(|f| f.evolved && f.id > 28),
        "unknown properties evolved the schema"
    );

    // Stats: sums match, null years present, sorted by (cell, year).
    let stats = wh.stats().await.unwrap();
    assert_eq!(stats.iter().map(|b| b.rows).sum::<u64>(), fx.metrics.rows);
    assert_eq!(stats.iter().map(|b| b.files).sum::<u64>(), fx.metrics.files);
    assert!(stats.iter().any(|b| b.year.is_none()));
    assert!(
        stats
            .windows(2)
            .all(|w| (&w[0].cell, w[0].year) < (&w[1].cell, w[1].year))
    );
    let candidates = stats.iter().filter(|b| b.files > 1).count() as u64;
    assert_eq!(info.compaction_candidates, candidates);

    // No filter: every file.
    let all = wh.file_paths(None, None, None).await.unwrap();
    assert_eq!(all.len() as u64, fx.metrics.files);

    // A point on the footprint of a known item finds a file holding it.
    let (id, (lon, lat), year) = known_item();
    let point = Geometry::Point(Point::new(lon, lat));
    let hits = wh.file_paths(Some(&point), None, None).await.unwrap();
    assert!(!hits.is_empty());
    assert!(hits.len() < all.len());
    assert!(
        hits.iter().any(|p| ids_in(p).contains(&id)),
        "{id} not in {hits:?}"
    );

    // A date range keeps every file holding an item whose time (interval, else datetime)
    // intersects it — the year's files and neighbouring years' files whose intervals reach in —
    // and prunes the rest.
    let (start, end) = (utc(year, 1, 1, 0, 0, 0), utc(year, 12, 31, 23, 59, 59));
    let dated = wh.file_paths(None, start, end).await.unwrap();
    let year_files = stats
        .iter()
        .filter(|b| b.year == Some(year))
        .map(|b| b.files)
        .sum::<u64>();
    assert_eq!(
        dated.iter().filter(|p| year_of(p) == Some(year)).count() as u64,
        year_files
    );
    for p in &all {
        if holds_time_match(p, start, end) {
            assert!(dated.contains(p), "{p} holds a match but was pruned");
        }
    }
    assert!(dated.len() < all.len(), "nothing pruned");
    let point_dated = wh.file_paths(Some(&point), start, end).await.unwrap();
    assert!(point_dated.iter().any(|p| ids_in(p).contains(&id)));
    // A range that ends long before the item's year drops files that cannot reach it.
    let early = utc(year - 3, 1, 1, 0, 0, 0);
    let before = wh.file_paths(None, None, early).await.unwrap();
    for p in &all {
        assert!(
            before.contains(p) || !holds_time_match(p, None, early),
            "{p}"
        );
    }
    assert!(before.len() < all.len());

    // Far away from every generated region: nothing.
    let far = parse_bbox("-150,10,-145,15", "--bbox").unwrap();
    assert!(
        wh.file_paths(Some(&far), None, None)
            .await
            .unwrap()
            .is_empty()
    );

    // A MultiPolygon: a tiny box at the known vertex plus the far box.
    let wkt = format!(
        "MULTIPOLYGON ((({lon} {lat}, {x1} {lat}, {x1} {y1}, {lon} {y1}, {lon} {lat})), \
         ((-150 10, -145 10, -145 15, -150 15, -150 10)))",
        x1 = lon + 0.001,
        y1 = lat + 0.001
    );
    let multi = parse_geometry(&wkt, "--intersects").unwrap();
    let multi_hits = wh.file_paths(Some(&multi), None, None).await.unwrap();
    assert!(multi_hits.iter().any(|p| ids_in(p).contains(&id)));
    let far_multi = parse_geometry(
        "MULTIPOLYGON (((-150 10, -145 10, -145 15, -150 15, -150 10)), \
         ((-140 10, -135 10, -135 15, -140 15, -140 10)))",
        "--intersects",
    )
    .unwrap();
    assert!(
        wh.file_paths(Some(&far_multi), None, None)
            .await
            .unwrap()
            .is_empty()
    );
}

fn cli() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_earthcatalog"))
}

#[test]
fn cli_files_rejects_bad_input_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.db");
    let catalog = catalog.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["--intersects", "POLYGON ((0 0, 1 0, 1 1"],
            "--intersects",
        ),
        (
            vec!["--intersects", "{\"type\": \"Polygon\""],
            "--intersects",
        ),
        (vec!["--bbox", "1,2,3"], "--bbox"),
        (vec!["--point", "10"], "--point"),
        (vec!["--start", "last tuesday"], "--start"),
        (
            vec!["--intersects", "@/nonexistent/region.geojson"],
            "--intersects",
        ),
    ] {
        let out = cli()
            .args(["files", "--catalog", catalog])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert!(
        !dir.path().join("catalog.db").exists(),
        "bad input never creates a catalog"
    );
    // A missing catalog is a usage error too, not a new empty database.
    let out = cli().args(["info", "--catalog", catalog]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("catalog.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_on_an_ingested_warehouse() {
    let fx = build().await;
    let run = |args: &[&str]| {
        let out = cli().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let info: serde_json::Value =
        serde_json::from_str(&run(&["info", "--catalog", &fx.catalog, "--json"])).unwrap();
    assert_eq!(info["rows"], fx.metrics.rows);
    assert_eq!(info["files"], fx.metrics.files);
    let text = run(&["info", "--catalog", &fx.catalog]);
    assert!(text.contains("h3, resolution 2"), "{text}");
    assert!(text.contains("unknown"), "{text}");
    let stats: Vec<serde_json::Value> =
        serde_json::from_str(&run(&["stats", "--catalog", &fx.catalog, "--json"])).unwrap();
    assert!(stats.iter().any(|b| b["year"].is_null()));
    let (id, (lon, lat), _) = known_item();
    let point = format!("{lon},{lat}");
    let paths = run(&["files", "--catalog", &fx.catalog, "--point", &point]);
    assert!(paths.lines().any(|p| ids_in(p).contains(&id)));
    let region = fx._dir.path().join("region.geojson");
    std::fs::write(
        &region,
        format!(r#"{{"type":"Feature","properties":{{}},"geometry":{{"type":"Point","coordinates":[{lon},{lat}]}}}}"#),
    )
    .unwrap();
    let at = format!("@{}", region.display());
    let from_file = run(&["files", "--catalog", &fx.catalog, "--intersects", &at]);
    assert_eq!(from_file, paths);
    let point_as = |format: &str| {
        run(&[
            "files",
            "--catalog",
            &fx.catalog,
            "--point",
            &point,
            "--format",
            format,
        ])
    };
    let sql = point_as("sql");
    assert!(sql.starts_with("grid_partition IN ('"), "{sql}");
    let duck = point_as("duckdb");
    assert!(duck.starts_with("read_parquet(['/"), "{duck}");
    let far = run(&[
        "files",
        "--catalog",
        &fx.catalog,
        "--bbox",
        "-150,10,-145,15",
        "--format",
        "json",
    ]);
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&far).unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn empty_catalogs_report_zero_and_never_crash() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.db");
    let catalog = catalog.to_str().unwrap();
    let warehouse = dir.path().join("wh");
    let warehouse = warehouse.to_str().unwrap();

    // A catalog database without the table.
    earthcatalog::catalog::Catalog::open(catalog, warehouse)
        .await
        .unwrap();
    let wh = Warehouse::open(catalog, None).await.unwrap();
    let info = wh.info().await.unwrap();
    assert!(!info.table_exists);
    assert_eq!((info.files, info.rows), (0, 0));
    assert!(wh.stats().await.unwrap().is_empty());
    assert!(wh.file_paths(None, None, None).await.unwrap().is_empty());

    // The table exists but nothing was committed: no snapshot.
    let cat = earthcatalog::catalog::Catalog::open(catalog, warehouse)
        .await
        .unwrap();
    cat.load_or_create(
        &GridConfig::H3 { resolution: 3 },
        "memory://none/idx.parquet",
    )
    .await
    .unwrap();
    drop(cat);
    let wh = Warehouse::open(catalog, None).await.unwrap();
    let info = wh.info().await.unwrap();
    assert!(info.table_exists);
    assert_eq!(info.grid_resolution, Some(3));
    assert!(info.snapshot.is_none());
    assert_eq!((info.files, info.rows, info.snapshot_count), (0, 0, 0));
    // The 28 base fields and the bbox covering.
    assert_eq!(info.schema.len(), 29);
    assert_eq!(info.hash_index_rows, None);
    assert!(info.hash_index_error.is_none());
    assert!(wh.stats().await.unwrap().is_empty());
    let point = Geometry::Point(Point::new(10.0, 60.0));
    assert!(
        wh.file_paths(Some(&point), None, None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `info --map` writes the coverage map: an SVG with one cell path per H3 cell of the table
/// (two for a cell across the antimeridian), over the land outline; `--map-year` keeps one
/// year's cells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_draws_a_coverage_map_of_the_tables_cells() {
    let fx = build().await;
    let wh = Warehouse::open(&fx.catalog, None).await.unwrap();
    let stats = wh.stats().await.unwrap();
    // The H3 cells holding rows (of one year, when given).
    let cells = |year: Option<i32>| -> BTreeSet<&str> {
        stats
            .iter()
            .filter(|b| year.is_none_or(|y| b.year == Some(y)))
            .filter(|b| b.cell.parse::<h3o::CellIndex>().is_ok())
            .map(|b| b.cell.as_str())
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("map.svg");
    // `info --map` (with these extra flags), then the SVG it wrote.
    let map = |extra: &[&str]| -> String {
        let out = cli()
            .args(["info", "--catalog", &fx.catalog, "--map"])
            .arg(&svg)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&svg).unwrap()
    };
    let (all, text) = (cells(None), map(&[]));
    let drawn = text.matches(" rows</title></path>").count();
    assert!(
        drawn >= all.len() && drawn <= 2 * all.len(),
        "{drawn} paths, {} cells",
        all.len()
    );
    assert!(text.contains(&format!("{} cells", all.len())), "caption");
    let year = stats.iter().filter_map(|b| b.year).max().unwrap();
    let text = map(&["--map-year", &year.to_string()]);
    let in_year = cells(Some(year));
    assert!(
        text.contains(&format!("{} cells", in_year.len())) && text.contains(&format!("({year})"))
    );
}
