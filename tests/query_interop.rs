//! Query interop: `file_paths` agrees with PyIceberg `plan_files` on the same catalog, and
//! info/stats/files/search work on a catalog in the Python tool's format (PyIceberg-created
//! table, pyarrow-written files with ms timestamps, int32 metrics, large strings, snappy).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use earthcatalog::pipeline::ingest;
use earthcatalog::query::SearchRequest;
use earthcatalog::query::Warehouse;
use earthcatalog::report::NoReporter;
use futures::TryStreamExt;

/// Every manifest under `root` (not manifest lists) decodes with the projection reader, and
/// agrees with the `iceberg` crate's generic reader entry for entry. Returns the codecs seen.
fn assert_projection_reader_agrees(root: &std::path::Path) -> BTreeSet<String> {
    use earthcatalog::catalog::avro::{PartitionDatum, read_manifest_entries};
    use iceberg::spec::{Literal, Manifest, PrimitiveLiteral};
    let mut codecs = BTreeSet::new();
    let mut checked = 0;
    for p in walk(root) {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".avro") || name.starts_with("snap-") {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).to_string();
        codecs.insert(
            if head.contains("deflate") {
                "deflate"
            } else {
                "null"
            }
            .to_string(),
        );
        // id, datetime, start_datetime, end_datetime, and a field id no file has.
        let wanted = [1, 4, 13, 23, 999];
        let fast = read_manifest_entries(&bytes, &wanted).unwrap_or_else(|e| panic!("{name}: {e}"));
        let slow = Manifest::parse_avro(&bytes).unwrap();
        assert_eq!(fast.len(), slow.entries().len(), "{name}");
        for (f, s) in fast.iter().zip(slow.entries()) {
            let df = s.data_file();
            assert_eq!(f.file_path, df.file_path());
            assert_eq!(f.status, s.status() as i32);
            assert_eq!(f.record_count as u64, df.record_count());
            assert_eq!(f.file_size_in_bytes as u64, df.file_size_in_bytes());
            let parts: Vec<PartitionDatum> = df
                .partition()
                .fields()
                .iter()
                .map(|v| match v {
                    None => PartitionDatum::Null,
                    Some(Literal::Primitive(PrimitiveLiteral::String(s))) => {
                        PartitionDatum::Str(s.clone())
                    }
                    Some(Literal::Primitive(PrimitiveLiteral::Int(i))) => {
                        PartitionDatum::Long(*i as i64)
                    }
                    Some(Literal::Primitive(PrimitiveLiteral::Long(i))) => PartitionDatum::Long(*i),
                    Some(_) => PartitionDatum::Other,
                })
                .collect();
            assert_eq!(f.partition, parts, "{name}");
            assert_eq!(f.has_value_counts, !df.value_counts().is_empty(), "{name}");
            for (stats, id) in f.stats.iter().zip(wanted) {
                let bytes =
                    |d: Option<&iceberg::spec::Datum>| d.map(|d| d.to_bytes().unwrap().to_vec());
                assert_eq!(stats.values, df.value_counts().get(&id).map(|&n| n as i64));
                assert_eq!(
                    stats.nulls,
                    df.null_value_counts().get(&id).map(|&n| n as i64)
                );
                assert_eq!(
                    stats.lower,
                    bytes(df.lower_bounds().get(&id)),
                    "{name} {id}"
                );
                assert_eq!(
                    stats.upper,
                    bytes(df.upper_bounds().get(&id)),
                    "{name} {id}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no manifest entries under {}", root.display());
    codecs
}

fn utc(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_paths_matches_pyiceberg_plan_files() {
    let ds = Dataset::synth(300, 61).await;
    let mut opts = ds.options(2);
    opts.chunk_items = 100;
    ingest(&opts, &NoReporter).await.unwrap();
    // Our manifests are uncompressed; the projection reader agrees with iceberg-rust's.
    let codecs = assert_projection_reader_agrees(std::path::Path::new(&opts.warehouse));
    assert!(codecs.contains("null"), "{codecs:?}");
    let wh = Warehouse::open(&opts.catalog, Some(&opts.warehouse))
        .await
        .unwrap();
    let points = [(-147.0, 61.0), (-45.0, 70.0), (16.0, 78.0), (-73.0, -50.0)];
    let ranges = [
        (None, None),
        (Some("2015-01-01T00:00:00Z"), Some("2020-12-31T23:59:59Z")),
    ];
    for (lon, lat) in points {
        let point = geo_types::Geometry::Point(geo_types::Point::new(lon, lat));
        let cells: Vec<String> = wh
            .cells_for_geometry(&point)
            .await
            .unwrap()
            .into_iter()
            .collect();
        for (start, end) in ranges {
            let ours: BTreeSet<String> = wh
                .file_paths(Some(&point), start.map(utc), end.map(utc))
                .await
                .unwrap()
                .into_iter()
                .collect();
            let filter = match (start, end) {
                (Some(s), Some(e)) => format!(
                    "And(In('grid_partition', {cells:?}), And(GreaterThanOrEqual('datetime', '{s}'.replace('Z', '+00:00')), LessThanOrEqual('datetime', '{e}'.replace('Z', '+00:00'))))"
                ),
                _ => format!("In('grid_partition', {cells:?})"),
            };
            let script = format!(
                r#"
import json
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import And, In, GreaterThanOrEqual, LessThanOrEqual
t = SqlCatalog("earthcatalog", uri="sqlite:///{db}", warehouse="file://{wh}").load_table("earthcatalog.stac_items")
print(json.dumps(sorted(f.file.file_path for f in t.scan(row_filter={filter}).plan_files())))
"#,
                db = opts.catalog,
                wh = opts.warehouse,
            );
            let theirs: BTreeSet<String> =
                serde_json::from_str::<Vec<String>>(python(&script).trim())
                    .unwrap()
                    .into_iter()
                    .collect();
            // PyIceberg also prunes by column metrics and drops year-unknown files under a date
            // range; ours keeps those as candidates. Everything PyIceberg plans, we plan.
            assert!(
                theirs.is_subset(&ours),
                "({lon},{lat}) {start:?}: PyIceberg planned files we pruned"
            );
            for extra in ours.difference(&theirs) {
                assert!(
                    start.is_some() && extra.contains("year=unknown"),
                    "({lon},{lat}) {start:?}: unexpected extra file {extra}"
                );
            }
            if start.is_none() {
                assert_eq!(ours, theirs);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_work_on_a_python_format_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.db");
    let whp = dir.path().join("warehouse");
    std::fs::create_dir_all(&whp).unwrap();
    for props in [
        r#"{"earthcatalog.grid.type": "h3", "earthcatalog.grid.resolution": "2"}"#,
        "{}",
    ] {
        let _ = std::fs::remove_file(&db);
        let res = if props == "{}" { 1 } else { 2 };
        let script = pyiceberg_create_table(&db.to_string_lossy(), &whp.to_string_lossy(), props)
            + &format!(
                r#"
import os, struct, h3, pyarrow as pa, pyarrow.parquet as pq
def f(lon, lat, ids, year, name):
    cell = h3.latlng_to_cell(lat, lon, {res})
    d = f"{wh}/grid_partition={{cell}}/year={{year}}"
    os.makedirs(d, exist_ok=True)
    n = len(ids)
    wkb = struct.pack("<bIdd", 1, 1, lon, lat)
    ms = int(__import__("datetime").datetime(year, 6, 1, tzinfo=__import__("datetime").timezone.utc).timestamp() * 1000)
    tb = pa.table({{
        "id": pa.array(ids, pa.large_string()),
        "grid_partition": pa.array([cell] * n, pa.large_string()),
        "geometry": pa.array([wkb] * n, pa.binary()),
        "datetime": pa.array([ms] * n, pa.timestamp("ms", tz="UTC")),
        # An image-pair interval from 200 days before to 300 days after, in ms like the tool.
        "start_datetime": pa.array([ms - 200 * 86400000] * n, pa.timestamp("ms", tz="UTC")),
        "end_datetime": pa.array([ms + 300 * 86400000] * n, pa.timestamp("ms", tz="UTC")),
        "platform": pa.array(["LC08"] * n, pa.large_string()),
        "percent_valid_pixels": pa.array([60] * n, pa.int32()),
        "assets": pa.array(['{{"data": {{"href": "x"}}}}'] * n, pa.large_string()),
    }})
    p = f"{{d}}/{{name}}"
    pq.write_table(tb, p, compression="snappy")
    return p
t.add_files([f(-147.0, 61.0, ["a", "b"], 2019, "part_000000.parquet"),
             f(-45.0, 70.0, ["c"], 2021, "part_000001.parquet"),
             f(-147.0, 61.0, ["d"], 2021, "compacted_ab12cd34.parquet")])
print("ok")
"#,
                wh = whp.display()
            );
        assert!(python(&script).trim().ends_with("ok"));
        // PyIceberg writes deflate-compressed manifests.
        assert!(assert_projection_reader_agrees(&whp).contains("deflate"));
        let wh = Warehouse::open(&db.to_string_lossy(), None).await.unwrap();
        let info = wh.info().await.unwrap();
        assert_eq!((info.files, info.rows), (3, 4), "res {res}");
        assert_eq!(info.grid_resolution, Some(res));
        let stats = wh.stats().await.unwrap();
        assert_eq!(stats.iter().map(|s| s.rows).sum::<u64>(), 4);
        let point = geo_types::Geometry::Point(geo_types::Point::new(-147.0, 61.0));
        let files = wh
            .file_paths(Some(&point), Some(utc("2021-01-01T00:00:00Z")), None)
            .await
            .unwrap();
        // The 2019 file's intervals end 2020-03-27: kept for 2020-03 by PyIceberg's ms bounds,
        // pruned for 2021 (the 2021 file starts 2020-11-13).
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].ends_with("compacted_ab12cd34.parquet"));
        let march = (
            Some(utc("2020-03-01T00:00:00Z")),
            Some(utc("2020-03-02T00:00:00Z")),
        );
        let files = wh.file_paths(Some(&point), march.0, march.1).await.unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].ends_with("part_000000.parquet"));
        let interval = earthcatalog::query::DatetimeInterval {
            start: march.0,
            end: march.1,
        };
        let items: Vec<serde_json::Value> = wh
            .search(
                &SearchRequest::new()
                    .with_intersects(point.clone())
                    .with_datetime(interval),
            )
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let ids: BTreeSet<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, BTreeSet::from(["a", "b"]));
        let items: Vec<serde_json::Value> = wh
            .search(&SearchRequest::new().with_intersects(point))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let ids: BTreeSet<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, BTreeSet::from(["a", "b", "d"]));
        let a = items.iter().find(|i| i["id"] == "a").unwrap();
        assert_eq!(a["properties"]["percent_valid_pixels"], 60);
        assert!(
            a["properties"]["datetime"]
                .as_str()
                .unwrap()
                .starts_with("2019-06-01T00:00:00")
        );
        assert_eq!(a["assets"]["data"]["href"], "x");
        std::fs::remove_dir_all(&whp).unwrap();
        std::fs::create_dir_all(&whp).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_writes_geoparquet_with_the_same_items_as_ndjson() {
    let ds = Dataset::synth(120, 62).await;
    let opts = ds.options(1);
    ingest(&opts, &NoReporter).await.unwrap();
    let out_path = ds.path("result.parquet");
    let base = |c: &mut std::process::Command| {
        c.args([
            "search",
            "--catalog",
            &opts.catalog,
            "--bbox",
            "-180,-90,180,90",
        ]);
    };
    let mut ndjson = cli();
    base(&mut ndjson);
    let nd = run(ndjson.args(["--format", "ndjson"]));
    assert!(nd.status.success());
    let ids_nd: BTreeSet<String> = String::from_utf8_lossy(&nd.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut gp = cli();
    base(&mut gp);
    let out = run(gp.args(["--format", "geoparquet", "--output", &out_path]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rows, kv) = read_rows(std::path::Path::new(&out_path));
    let ids_gp: BTreeSet<String> = rows.iter().map(|r| r.0.clone()).collect();
    assert_eq!(rows.len(), ids_nd.len(), "one row per item");
    assert_eq!(ids_gp, ids_nd);
    assert!(
        kv.iter()
            .any(|(k, v)| k == "geo" && v.contains("\"primary_column\":\"geometry\""))
    );
    // --format geoparquet without --output is a usage error.
    let mut bad = cli();
    base(&mut bad);
    assert_eq!(
        run(bad.args(["--format", "geoparquet"])).status.code(),
        Some(2)
    );
}
