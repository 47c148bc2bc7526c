//! Readers other than ours find every item of a warehouse we wrote: DuckDB (`read_parquet` with
//! `ST_Intersects`, and `iceberg_scan` over the table), geopandas (`read_parquet(bbox=…)` over
//! the bbox covering, skipping row groups by its statistics) and PyIceberg row filters on the
//! interval columns, each against the brute-force set computed from the source item files.
//! DuckDB runs offline: the `duckdb` wheel with the `duckdb-ext-*` wheels, whose extension
//! directory it is pointed at.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use common::*;
use earthcatalog::pipeline::ingest;
use earthcatalog::report::NoReporter;

/// Run a script that prints one JSON object; its stdout and stderr when it fails.
fn json_output(cmd: &mut std::process::Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The script: brute force over the item files (shapely, planar like DuckDB), then each reader.
const SCRIPT: &str = r#"
import json, pathlib, sqlite3, sys
from datetime import datetime, timezone
import duckdb, duckdb_ext
import geopandas, pyarrow.compute as pc, pyarrow.dataset as pds
from shapely.geometry import shape, box
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual

items_dir, db, warehouse = sys.argv[1], sys.argv[2], sys.argv[3]
region = box(-55, 60, -20, 84)
lo, hi = datetime(2019, 6, 1, tzinfo=timezone.utc), datetime(2019, 9, 1, tzinfo=timezone.utc)

def ts(v):
    if not v:
        return None
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)

spatial, interval, all_ids = set(), set(), set()
for p in pathlib.Path(items_dir).rglob("*.json"):
    item = json.loads(p.read_text())
    all_ids.add(item["id"])
    g = item.get("geometry")
    try:
        if g and shape(g).intersects(region):
            spatial.add(item["id"])
    except Exception:
        pass
    props = item.get("properties", {})
    s, e = ts(props.get("start_datetime")), ts(props.get("end_datetime"))
    if s and e and s <= hi and e >= lo:
        interval.add(item["id"])

con = duckdb.connect(config={
    "extension_directory": str(pathlib.Path(duckdb_ext.__path__[0]) / "extensions"),
    "autoinstall_known_extensions": False,
})
con.execute("LOAD spatial")
con.execute("LOAD iceberg")
files = f"{warehouse}/grid_partition=*/year=*/*.parquet"
duck_spatial = {r[0] for r in con.execute(
    f"SELECT DISTINCT id FROM read_parquet('{files}') WHERE ST_Intersects(geometry, "
    f"ST_GeomFromText('{region.wkt}'))").fetchall()}
duck_interval = {r[0] for r in con.execute(
    f"SELECT DISTINCT id FROM read_parquet('{files}') WHERE start_datetime <= TIMESTAMPTZ "
    f"'{hi.isoformat()}' AND end_datetime >= TIMESTAMPTZ '{lo.isoformat()}'").fetchall()}
meta = sqlite3.connect(db).execute("SELECT metadata_location FROM iceberg_tables").fetchone()[0]
rows, ids = con.execute(f"SELECT count(*), count(DISTINCT id) FROM iceberg_scan('{meta}')").fetchone()

# geopandas: the covering selects candidates (row groups by statistics, then rows), the
# exact test keeps the intersecting ones.
paths = sorted(str(p) for p in pathlib.Path(warehouse).glob("grid_partition=*/year=*/*.parquet"))
gdf = geopandas.read_parquet(paths, bbox=region.bounds, partitioning=None)
geo_candidates = set(gdf["id"])
geo_exact = set(gdf[gdf.intersects(region)]["id"])
minx, miny, maxx, maxy = region.bounds
cov = lambda f: pc.field("geometry_bbox", f)
overlap = (cov("xmin") <= maxx) & (cov("xmax") >= minx) & (cov("ymin") <= maxy) & (cov("ymax") >= miny)
fragments = list(pds.dataset(paths, format="parquet").get_fragments())
row_groups = sum(f.num_row_groups for f in fragments)
row_groups_read = sum(len(f.split_by_row_group(overlap)) for f in fragments)

table = SqlCatalog("earthcatalog", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}") \
    .load_table("earthcatalog.stac_items")
scan = table.scan(row_filter=And(LessThanOrEqual("start_datetime", hi.isoformat()),
                                 GreaterThanOrEqual("end_datetime", lo.isoformat())),
                  selected_fields=("id",))
pyiceberg_interval = set(scan.to_arrow().column("id").to_pylist())

print(json.dumps({
    "all": len(all_ids), "spatial": sorted(spatial), "interval": sorted(interval),
    "duck_spatial": sorted(duck_spatial), "duck_interval": sorted(duck_interval),
    "iceberg_scan": [rows, ids], "pyiceberg_interval": sorted(pyiceberg_interval),
    "geopandas_candidates_cover": spatial <= geo_candidates,
    "geopandas_candidates": len(geo_candidates), "geopandas_exact": sorted(geo_exact),
    "row_groups": row_groups, "row_groups_read": row_groups_read,
}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_and_pyiceberg_find_every_item_of_our_warehouse() {
    let ds = Dataset::synth(300, 17).await;
    let m = ingest(&ds.options(1), &NoReporter).await.unwrap();
    assert_eq!(m.failed, 0);
    let r = json_output(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .args([ds.items_root(), ds.path("catalog.db"), ds.path("warehouse")]),
    );
    assert!(!r["spatial"].as_array().unwrap().is_empty());
    assert!(!r["interval"].as_array().unwrap().is_empty());
    assert_eq!(r["duck_spatial"], r["spatial"], "DuckDB ST_Intersects");
    assert_eq!(r["duck_interval"], r["interval"], "DuckDB interval filter");
    assert_eq!(
        r["pyiceberg_interval"], r["interval"],
        "PyIceberg row filter"
    );
    assert_eq!(
        r["geopandas_candidates_cover"], true,
        "geopandas bbox candidates"
    );
    assert_eq!(
        r["geopandas_exact"], r["spatial"],
        "geopandas bbox + intersects"
    );
    let (groups, read) = (
        r["row_groups"].as_u64().unwrap(),
        r["row_groups_read"].as_u64().unwrap(),
    );
    println!(
        "geopandas read_parquet(bbox=…): {read} of {groups} row groups read by the covering's \
         statistics, {} candidate rows, {} intersecting",
        r["geopandas_candidates"],
        r["spatial"].as_array().unwrap().len()
    );
    assert!(
        read < groups,
        "the covering skipped no row group: {read} of {groups}"
    );
    assert_eq!(r["iceberg_scan"][0], m.rows, "DuckDB iceberg_scan rows");
    assert_eq!(r["iceberg_scan"][1], r["all"], "DuckDB iceberg_scan ids");
}

/// Every data file we write (ingest outputs and compaction outputs) passes the GeoParquet
/// validator's core conformance class (the OGC abstract tests, `geoparquet-validator`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_we_write_passes_a_geoparquet_validator() {
    use earthcatalog::maintenance::{CompactOptions, compact_warehouse};
    use earthcatalog::pipeline::{IngestMode, IngestOptions};
    let ds = Dataset::synth(200, 23).await;
    let first = ds.options(1);
    let all = IngestOptions {
        mode: IngestMode::All,
        ..first.clone()
    };
    ingest(&first, &NoReporter).await.unwrap();
    ingest(&all, &NoReporter).await.unwrap();
    let compacted = compact_warehouse(
        &CompactOptions {
            warehouse: ds.path("warehouse"),
            catalog: ds.path("catalog.db"),
            ..CompactOptions::default()
        },
        &NoReporter,
    )
    .await
    .unwrap();
    assert!(compacted.buckets_compacted > 0);
    // Each bucket now holds a compacted file and an ingest part file.
    ingest(&all, &NoReporter).await.unwrap();
    let files = data_files(&ds.dir.path().join("warehouse"));
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("compacted_"))
    );
    assert!(files.iter().any(|f| f.to_string_lossy().contains("part_")));
    let out = std::process::Command::new("geoparquet-validator")
        .args(["check", "--class", "core", "--max-files", "100000"])
        .arg(ds.path("warehouse"))
        .output()
        .expect("geoparquet-validator (tests/requirements.txt)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One line per file: `<path>  [1.1.0]  core <pass>/<fail>/<n/a> ...`, no core failure.
    let checked: Vec<&str> = text.lines().filter(|l| l.contains(".parquet")).collect();
    assert_eq!(checked.len(), files.len(), "{text}");
    for line in checked {
        let core = line
            .split("core ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap();
        let fails = core.split('/').nth(1).unwrap();
        assert_eq!(fails, "0", "{line}");
    }
}

/// The `itslive` client (PyPI `itslive`, its serverless search with the DuckDB engine, in a
/// venv of its own: `EARTHCATALOG_ITSLIVE_PYTHON`, which `scripts/test` sets) over a
/// `grid/level/tile` warehouse we wrote returns every matching data href of a brute-force scan,
/// items with only a start/end interval among them (they sit in their midpoint's `year=`).
/// DuckDB loads its extensions from the wheels' files, copied under a scratch `HOME`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_itslive_client_finds_every_matching_href_of_a_grid_level_tile_warehouse() {
    let python = match std::env::var("EARTHCATALOG_ITSLIVE_PYTHON") {
        Ok(p) => std::path::PathBuf::from(p),
        Err(_) => {
            eprintln!(
                "SKIPPED: EARTHCATALOG_ITSLIVE_PYTHON is not set (scripts/test installs the \
                 itslive client in a venv of its own and sets it)"
            );
            return;
        }
    };
    assert!(python.exists(), "no itslive venv at {}", python.display());
    let ds = Dataset::synth(1500, 9).await;
    let options = earthcatalog::pipeline::IngestOptions {
        layout: Some(earthcatalog::partition::Layout::GridLevelTile),
        ..ds.options(1)
    };
    let m = ingest(&options, &NoReporter).await.unwrap();
    assert_eq!(m.failed, 0);
    // DuckDB's default extension directory, under a scratch HOME, holding the wheels' files.
    let home = tempfile::tempdir().unwrap();
    let site = std::process::Command::new(&python)
        .args(["-c", "import duckdb_ext; print(duckdb_ext.__path__[0])"])
        .output()
        .unwrap();
    let ext = std::path::Path::new(String::from_utf8_lossy(&site.stdout).trim())
        .join("extensions/v1.4.4/linux_amd64");
    let dest = home.path().join(".duckdb/extensions/v1.4.4/linux_amd64");
    std::fs::create_dir_all(&dest).unwrap();
    for f in std::fs::read_dir(&ext).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dest.join(f.file_name())).unwrap();
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/itslive/search.py");
    let r = json_output(
        std::process::Command::new(&python)
            .arg(script)
            .args([ds.items_root(), ds.path("warehouse")])
            .env("HOME", home.path()),
    );
    let expected = r["expected"].as_array().unwrap();
    assert!(
        expected.len() > 20,
        "only {} matching items",
        expected.len()
    );
    assert!(
        r["interval_only"].as_u64().unwrap() >= 1,
        "no interval-only item matches the query"
    );
    let set = |k: &str| -> std::collections::BTreeSet<String> {
        r[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let (found, expected) = (set("found"), set("expected"));
    let missing: Vec<&String> = expected.difference(&found).collect();
    let extra: Vec<&String> = found.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "itslive serverless search: {} of {} matching hrefs missing (first: {:?}), {} extra \
         (first: {:?})",
        missing.len(),
        expected.len(),
        missing.first(),
        extra.len(),
        extra.first()
    );
}

/// `earthcatalog export` writes the items of a search as stac-geoparquet (read back by rustac)
/// and as NDJSON, both equal item for item to what `search` returns; the Parquet file has one
/// row group per chunk, the bbox struct as its covering and the collections in its metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_round_trips_through_rustac_and_ndjson() {
    let ds = Dataset::synth(600, 29).await;
    ingest(&ds.options(1), &NoReporter).await.unwrap();
    let catalog = ds.path("catalog.db");
    let search = run(cli().args(["search", "--catalog", &catalog, "--format", "ndjson"]));
    assert!(search.status.success());
    std::fs::write(ds.path("search.ndjson"), &search.stdout).unwrap();
    for (format, out) in [
        ("stac-geoparquet", ds.path("items.parquet")),
        ("ndjson", ds.path("items.ndjson")),
    ] {
        let r = json_summary(
            &run(cli().args([
                "export",
                "--catalog",
                &catalog,
                "--format",
                format,
                "--chunk-items",
                "100",
                "--output",
                &out,
                "--json",
            ])),
            0,
        );
        assert_eq!(r["format"], format);
        assert!(r["items"].as_u64().unwrap() > 500, "{r}");
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/export/compare.py");
    let r = json_output(std::process::Command::new("python3").arg(script).args([
        ds.path("search.ndjson"),
        ds.path("items.parquet"),
        ds.path("items.ndjson"),
    ]));
    let items = r["items"].as_u64().unwrap();
    assert_eq!(r["parquet_items"], items);
    assert_eq!(r["ndjson_items"], items);
    assert_eq!(r["parquet_diff_count"], 0, "{}", r["parquet_diffs"]);
    assert_eq!(r["ndjson_diff_count"], 0);
    assert_eq!(r["row_groups"], items.div_ceil(100));
    assert_eq!(
        r["covering"]["bbox"]["xmin"],
        serde_json::json!(["bbox", "xmin"])
    );
    assert_eq!(r["stac_geoparquet"]["version"], "1.0.0");
    assert!(
        r["stac_geoparquet"]["collections"]
            .as_object()
            .unwrap()
            .contains_key("itslive-granules")
    );
}
