//! Bad input end to end: inventories that are not inventories (exit 2, nothing ingested),
//! inventories with some malformed rows (the good rows are ingested, each bad row is in the
//! failures report with its line or row, exit 3), and items whose coordinates cannot be on the
//! globe (reported as invalid geometry, exit 3).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use common::*;
use parquet::arrow::ArrowWriter;

/// Deterministic pseudo-random bytes (xorshift).
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A Parquet file of string columns (`None` = null).
fn parquet_file(path: &Path, columns: Vec<(&str, Vec<Option<String>>)>) {
    let arrays: Vec<(&str, ArrayRef)> = columns
        .into_iter()
        .map(|(name, values)| (name, Arc::new(StringArray::from(values)) as ArrayRef))
        .collect();
    let batch = RecordBatch::try_from_iter(arrays).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// `(bucket, key)` of every row of the synthetic inventory (which has a header).
fn synth_rows(ds: &Dataset) -> Vec<(String, String)> {
    std::fs::read_to_string(ds.inventory())
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let mut fields = line.split(',');
            let bucket = fields.next().unwrap().to_string();
            let key = fields.next().unwrap().to_string();
            (bucket, key)
        })
        .collect()
}

/// `earthcatalog ingest --json` of `inventory` over the dataset's items.
fn ingest_cli(ds: &Dataset, inventory: &str) -> Output {
    run(cli().args([
        "ingest",
        "--json",
        "--no-lock",
        "--resolution",
        "1",
        "--inventory",
        inventory,
        "--items-root",
        &ds.items_root(),
        "--warehouse",
        &ds.path("warehouse"),
        "--catalog",
        &ds.path("catalog.db"),
    ]))
}

/// The run failed with exit 2, naming the inventory file and `what`, and wrote no data file.
fn assert_rejected(ds: &Dataset, out: &Output, file: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--inventory"), "{stderr}");
    assert!(stderr.contains(file), "no {file} in: {stderr}");
    assert!(stderr.contains(what), "no {what:?} in: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "no summary on stdout for a rejected inventory"
    );
    assert!(data_files(&ds.dir.path().join("warehouse")).is_empty());
}

/// The failures report of a run, as `(bucket, key, reason)` rows.
fn failures(m: &serde_json::Value) -> Vec<(String, String, String)> {
    let path = m["failures_report"]
        .as_str()
        .unwrap()
        .trim_start_matches("file://")
        .to_string();
    let mut reader = csv::Reader::from_path(&path).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec!["bucket", "key", "reason"],
        "report columns"
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].to_string(), r[2].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_are_not_an_inventory_whatever_the_name() {
    let ds = Dataset::synth(5, 11).await;
    let bytes = random_bytes(4096, 0x2545_f491_4f6c_dd1d);
    for (name, what) in [
        ("random.csv", "binary data, not CSV text"),
        ("random.csv.gz", "not gzip data"),
        ("random.parquet", "not a readable Parquet file"),
        ("random/manifest.json", "invalid manifest.json"),
    ] {
        let path = ds.path(name);
        std::fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let out = ingest_cli(&ds, &path);
        assert_rejected(&ds, &out, &path, what);
    }
    // A Parquet file under a CSV name says what it looks like.
    let misnamed = ds.path("parquet-named.csv");
    parquet_file(
        Path::new(&misnamed),
        vec![
            ("bucket", vec![Some("its-live-data".into())]),
            ("key", vec![Some("a.stac.json".into())]),
        ],
    );
    let out = ingest_cli(&ds, &misnamed);
    assert_rejected(&ds, &out, &misnamed, "it looks like a Parquet file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_without_a_key_column_is_rejected() {
    let ds = Dataset::synth(5, 12).await;
    let rows = synth_rows(&ds);

    // A CSV header without a key column.
    let csv = ds.path("nokey.csv");
    let mut text = String::from("bucket,size,last_modified_date\n");
    for (bucket, _) in &rows {
        text.push_str(&format!("{bucket},10,2024-01-01T00:00:00Z\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let out = ingest_cli(&ds, &csv);
    assert_rejected(&ds, &out, &csv, "the header row has no key column");

    // A header-less CSV with one column only: no row has a key.
    let single = ds.path("single.csv");
    let keys: String = rows.iter().map(|(_, k)| format!("{k}\n")).collect();
    std::fs::write(&single, keys).unwrap();
    let out = ingest_cli(&ds, &single);
    assert_rejected(&ds, &out, &single, "no usable row: all 5 data row(s)");

    // A Parquet file without `key` (AWS spells it in lower case).
    let parquet = ds.path("nokey.parquet");
    parquet_file(
        Path::new(&parquet),
        vec![
            (
                "bucket",
                rows.iter().map(|(b, _)| Some(b.clone())).collect(),
            ),
            ("Key", rows.iter().map(|(_, k)| Some(k.clone())).collect()),
        ],
    );
    let out = ingest_cli(&ds, &parquet);
    assert_rejected(
        &ds,
        &out,
        &parquet,
        "no `key` column (columns: bucket, Key)",
    );

    // The same inventory with `key` is fine.
    let good = ds.path("good.parquet");
    parquet_file(
        Path::new(&good),
        vec![
            (
                "bucket",
                rows.iter().map(|(b, _)| Some(b.clone())).collect(),
            ),
            ("key", rows.iter().map(|(_, k)| Some(k.clone())).collect()),
        ],
    );
    let m = json_summary(&ingest_cli(&ds, &good), 0);
    assert_eq!(m["items"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gz_inventory_that_is_not_gzip_is_rejected() {
    let ds = Dataset::synth(5, 13).await;
    let plain = std::fs::read(ds.inventory()).unwrap();
    let path = ds.path("inventory.csv.gz");
    std::fs::write(&path, &plain).unwrap();
    let out = ingest_cli(&ds, &path);
    assert_rejected(&ds, &out, &path, "not gzip data");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("it looks like plain text"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Compressed, it ingests.
    std::fs::write(&path, gzip(&plain)).unwrap();
    let m = json_summary(&ingest_cli(&ds, &path), 0);
    assert_eq!(m["items"], 5);
}

/// Good rows are ingested and every malformed row is reported with its position, for each
/// kind of inventory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_are_reported_with_their_position_and_good_rows_ingested() {
    let ds = Dataset::synth(12, 14).await;
    let rows = synth_rows(&ds);
    // Header-less, quoted like AWS, with a blank line 6; malformed rows on lines 3, 7 and 11.
    let quoted = |b: &str, k: &str| format!("\"{b}\",\"{k}\",\"10\",\"2024-01-01T00:00:00Z\"\n");
    let mut text = String::new();
    let mut good = rows.iter();
    for line in 1..=16 {
        match line {
            3 => text.push_str("\"lonely\"\n"),
            6 => text.push('\n'),
            7 => text.push_str("\"\",\"orphan.stac.json\",\"10\",\"2024-01-01T00:00:00Z\"\n"),
            11 => text.push_str("\"its-live-data\",\"\",\"10\",\"2024-01-01T00:00:00Z\"\n"),
            _ => {
                let (b, k) = good.next().unwrap();
                text.push_str(&quoted(b, k));
            }
        }
    }
    assert!(good.next().is_none());
    let csv = ds.path("mixed.csv");
    std::fs::write(&csv, &text).unwrap();
    let gz = ds.path("mixed.csv.gz");
    std::fs::write(&gz, gzip(text.as_bytes())).unwrap();
    std::fs::create_dir_all(ds.path("inv/data")).unwrap();
    let data_file = ds.path("inv/data/part-0.csv.gz");
    std::fs::write(&data_file, gzip(text.as_bytes())).unwrap();
    let manifest = ds.path("inv/manifest.json");
    std::fs::write(
        &manifest,
        serde_json::json!({
            "sourceBucket": "its-live-data",
            "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, Size, LastModifiedDate",
            "files": [{"key": "data/part-0.csv.gz", "size": 1}]
        })
        .to_string(),
    )
    .unwrap();
    // Parquet: malformed rows 0, 5 and 13 (0-based).
    let parquet = ds.path("mixed.parquet");
    let mut buckets = Vec::new();
    let mut keys = Vec::new();
    let mut good = rows.iter();
    for row in 0..15 {
        match row {
            0 => {
                buckets.push(None);
                keys.push(Some("nobucket.stac.json".to_string()));
            }
            5 => {
                buckets.push(Some("its-live-data".to_string()));
                keys.push(None);
            }
            13 => {
                buckets.push(Some("its-live-data".to_string()));
                keys.push(Some(String::new()));
            }
            _ => {
                let (b, k) = good.next().unwrap();
                buckets.push(Some(b.clone()));
                keys.push(Some(k.clone()));
            }
        }
    }
    parquet_file(
        Path::new(&parquet),
        vec![("bucket", buckets), ("key", keys)],
    );

    let lines = |file: &str| -> BTreeSet<String> {
        [3, 7, 11]
            .iter()
            .map(|n| format!("{file}#line={n}"))
            .collect()
    };
    let cases = [
        (csv.clone(), lines(&csv)),
        (gz.clone(), lines(&gz)),
        (manifest.clone(), lines(&data_file)),
        (
            parquet.clone(),
            [0, 5, 13]
                .iter()
                .map(|n| format!("{parquet}#row={n}"))
                .collect(),
        ),
    ];
    for (i, (inventory, expected)) in cases.into_iter().enumerate() {
        // A fresh warehouse and catalog per inventory.
        let _ = std::fs::remove_dir_all(ds.path("warehouse"));
        let _ = std::fs::remove_file(ds.path("catalog.db"));
        let m = json_summary(&ingest_cli(&ds, &inventory), 3);
        assert_eq!(m["items"], 12, "{inventory}: good rows are ingested");
        assert_eq!(m["failed"], 3, "{inventory}");
        assert_eq!(m["inventory"]["malformed"], 3, "{inventory}");
        assert_eq!(
            m["failures_by_reason"]["inventory: malformed row"], 3,
            "{inventory}: {}",
            m["failures_by_reason"]
        );
        let report = failures(&m);
        let located: BTreeSet<String> = report.iter().map(|(_, key, _)| key.clone()).collect();
        let expected: BTreeSet<String> = expected
            .into_iter()
            .map(|l| {
                if l.starts_with('/') {
                    format!("file://{l}")
                } else {
                    l
                }
            })
            .collect();
        assert_eq!(located, expected, "case {i}: {inventory}");
        for (bucket, _, reason) in &report {
            assert_eq!(bucket, "");
            assert!(reason.starts_with("inventory: malformed row: "), "{reason}");
        }
        let reasons: Vec<&str> = report.iter().map(|(_, _, r)| r.as_str()).collect();
        let expected_problems: &[&str] = if inventory.ends_with(".parquet") {
            &["null bucket", "null key", "empty key"]
        } else {
            &["1 field(s)", "empty bucket", "empty key"]
        };
        for p in expected_problems {
            assert!(
                reasons.iter().any(|r| r.contains(p)),
                "{inventory}: no {p:?} in {reasons:?}"
            );
        }
    }
}

/// Writes an item below the items root and returns its inventory line.
fn extra_item(ds: &Dataset, id: &str, geometry: serde_json::Value) -> String {
    let key = format!("extra/{id}.stac.json");
    let item = serde_json::json!({
        "type": "Feature", "stac_version": "1.0.0", "id": id,
        "geometry": geometry,
        "properties": {"datetime": "2020-06-01T00:00:00Z", "platform": "LC08"},
        "links": [], "assets": {}
    });
    let path = ds.path(&format!("items/{key}"));
    std::fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
    std::fs::write(&path, item.to_string()).unwrap();
    format!("its-live-data,{key},1,2024-01-01T00:00:00Z\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_coordinates_are_reported_not_placed() {
    let ds = Dataset::synth(10, 15).await;
    let mut inv = std::fs::read_to_string(ds.inventory()).unwrap();
    inv.push_str(&extra_item(
        &ds,
        "lat95",
        serde_json::json!({"type": "Point", "coordinates": [10.0, 95.0]}),
    ));
    inv.push_str(&extra_item(
        &ds,
        "lon500",
        serde_json::json!({"type": "Polygon", "coordinates": [[
            [499.0, 10.0], [500.0, 10.0], [500.0, 11.0], [499.0, 10.0]
        ]]}),
    ));
    // Valid footprints at the edges stay valid: wrapped across the antimeridian, and on ±180/±90.
    inv.push_str(&extra_item(
        &ds,
        "wrapped",
        serde_json::json!({"type": "Polygon", "coordinates": [[
            [179.0, -78.0], [-178.0, -78.0], [-178.0, -77.0], [179.0, -77.0], [179.0, -78.0]
        ]]}),
    ));
    inv.push_str(&extra_item(
        &ds,
        "edges",
        serde_json::json!({"type": "MultiPoint", "coordinates": [[180.0, 90.0], [-180.0, -90.0]]}),
    ));
    std::fs::write(ds.inventory(), inv).unwrap();

    let out = run(ds
        .ingest_cmd()
        .args(["--json", "--no-lock", "--resolution", "1"]));
    let m = json_summary(&out, 3);
    assert_eq!(m["items"], 12, "10 synthetic items + wrapped + edges");
    assert_eq!(m["failed"], 2);
    assert_eq!(m["failures_by_reason"]["parse: invalid geometry"], 2);
    assert_eq!(m["parse"]["invalid_coordinates"], 2);
    let report = failures(&m);
    let reason_of = |id: &str| {
        report
            .iter()
            .find(|(_, key, _)| key == &format!("extra/{id}.stac.json"))
            .map(|(_, _, r)| r.clone())
            .unwrap_or_else(|| panic!("{id} not in {report:?}"))
    };
    assert_eq!(
        reason_of("lat95"),
        "parse: invalid geometry: coordinate [10, 95]: latitude 95 is outside [-90, 90]"
    );
    assert_eq!(
        reason_of("lon500"),
        "parse: invalid geometry: coordinate [499, 10]: longitude 499 is outside [-180, 180]"
    );

    // Neither bad item reached the warehouse; the wrapped one sits on both sides of 180°.
    let mut cells_of_wrapped = BTreeSet::new();
    for f in data_files(&ds.dir.path().join("warehouse")) {
        for (id, cell, _) in read_rows(&f).0 {
            assert!(
                id != "lat95" && id != "lon500",
                "{id} was written to {cell}"
            );
            if id == "wrapped" {
                cells_of_wrapped.insert(cell);
            }
        }
    }
    let cell = |lon: f64, lat: f64| {
        h3o::LatLng::new(lat, lon)
            .unwrap()
            .to_cell(h3o::Resolution::One)
            .to_string()
    };
    assert!(
        cells_of_wrapped.contains(&cell(179.5, -77.5))
            && cells_of_wrapped.contains(&cell(-178.5, -77.5)),
        "{cells_of_wrapped:?}"
    );
    assert!(cells_of_wrapped.len() <= 6, "{cells_of_wrapped:?}");
}
