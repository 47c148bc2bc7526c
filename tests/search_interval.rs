//! Temporal search over items whose start/end interval crosses year boundaries: `search` and
//! `files` against brute force (docs/decisions.md, "Search semantics").
//!
//! Hand-made items over Greenland in a res-1 warehouse, written by several ingests so each
//! (cell, year) bucket holds several files and neighbouring years sit in separate files: the two
//! ITS_LIVE pairs of the issue (datetime outside the query, interval overlapping it), random
//! pairs of up to ~1.5 years, items with only `datetime`, items with only one interval end and
//! no datetime, and items with no time at all.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use chrono::{DateTime, TimeZone, Utc};
use common::*;
use earthcatalog::fetch::FetchOptions;
use earthcatalog::grid::GridConfig;
use earthcatalog::pipeline::{IngestOptions, ingest};
use earthcatalog::query::{DatetimeInterval, SearchRequest, Warehouse, parse_bbox};
use earthcatalog::report::NoReporter;
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value as Json, json};

/// Greenland, the query box.
const BBOX: &str = "-55,62,-40,75";

fn iso(t: i64) -> String {
    Utc.timestamp_micros(t)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn at(y: i32, m: u32, d: u32) -> i64 {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .unwrap()
        .timestamp_micros()
}

/// (datetime, start_datetime, end_datetime) of one item.
type Times = (Option<i64>, Option<i64>, Option<i64>);

/// A deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const DAY: i64 = 86_400_000_000;

/// Every item's times: the two pairs first, then the generated kinds.
fn catalogue() -> Vec<(String, Times)> {
    let mut out = vec![
        (
            "pair_2021_reaching_2020".to_string(),
            (
                Some(at(2021, 1, 14)),
                Some(at(2020, 11, 27)),
                Some(at(2021, 3, 3)),
            ),
        ),
        (
            "pair_2014_reaching_2015".to_string(),
            (
                Some(at(2014, 11, 19)),
                Some(at(2014, 8, 27)),
                Some(at(2015, 2, 11)),
            ),
        ),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for i in 0..160 {
        let start =
            at(2012, 1, 1) + (rng.below(12 * 365) as i64) * DAY + rng.below(DAY as u64) as i64;
        let span = (rng.below(550) as i64 + 1) * DAY;
        let end = start + span;
        let mid = start + span / 2;
        let times = match i % 8 {
            // Pairs: datetime in the middle of the interval (ITS_LIVE), crossing years often.
            0..=3 => (Some(mid), Some(start), Some(end)),
            // A datetime outside its own interval: the interval still decides.
            4 => (Some(end + 30 * DAY), Some(start), Some(end)),
            // Only a datetime.
            5 => (Some(mid), None, None),
            // No datetime, one interval end (open on the other side).
            6 if i % 16 == 6 => (None, Some(start), None),
            6 => (None, None, Some(end)),
            // No time at all.
            _ => (None, None, None),
        };
        out.push((format!("item_{i:03}"), times));
    }
    out
}

fn item_json(id: &str, (d, s, e): Times, k: usize) -> Json {
    // Footprints spread over the box, some crossing res-1 cell boundaries.
    let lon = -54.0 + (k % 13) as f64;
    let lat = 63.0 + (k % 11) as f64;
    let mut props = serde_json::Map::new();
    props.insert("datetime".into(), d.map_or(Json::Null, |t| json!(iso(t))));
    if let Some(s) = s {
        props.insert("start_datetime".into(), json!(iso(s)));
    }
    if let Some(e) = e {
        props.insert("end_datetime".into(), json!(iso(e)));
    }
    props.insert("platform".into(), json!(["LC08", "S2A", "S1A"][k % 3]));
    json!({
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": id,
        "geometry": {"type": "Polygon", "coordinates": [[
            [lon, lat], [lon + 1.5, lat], [lon + 1.5, lat + 0.8], [lon, lat + 0.8], [lon, lat]
        ]]},
        "bbox": [lon, lat, lon + 1.5, lat + 0.8],
        "properties": props,
        "links": [],
        "assets": {"data": {"href": format!("s3://b/{id}.nc")}}
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    times: BTreeMap<String, Times>,
}

impl Fixture {
    fn catalog(&self) -> String {
        self.root.join("catalog.db").to_string_lossy().into_owned()
    }
}

/// Three ingests of interleaved thirds of the items: several files per bucket.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let items = catalogue();
    for (k, (id, times)) in items.iter().enumerate() {
        let path = root.join("items").join(format!("{id}.stac.json"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, item_json(id, *times, k).to_string()).unwrap();
    }
    for part in 0..3 {
        let inventory = root.join(format!("inventory_{part}.csv"));
        let rows: String = items
            .iter()
            .enumerate()
            .filter(|(k, _)| k % 3 == part)
            .map(|(_, (id, _))| format!("b,{id}.stac.json\n"))
            .collect();
        std::fs::write(&inventory, rows).unwrap();
        let opts = IngestOptions {
            inventory: inventory.to_string_lossy().into_owned(),
            warehouse: root.join("warehouse").to_string_lossy().into_owned(),
            catalog: root.join("catalog.db").to_string_lossy().into_owned(),
            grid: Some(GridConfig::H3 { resolution: 1 }),
            fetch: FetchOptions {
                items_root: Some(root.join("items").to_string_lossy().into_owned()),
            },
            lock: false,
            ..IngestOptions::default()
        };
        let m = ingest(&opts, &NoReporter).await.unwrap();
        assert_eq!(m.failed, 0);
    }
    Fixture {
        _dir: dir,
        root,
        times: items.into_iter().collect(),
    }
}

/// The brute-force rule, written independently of the library.
fn matches((d, s, e): Times, lo: Option<i64>, hi: Option<i64>) -> bool {
    let (first, last) = match (s, e, d) {
        (Some(s), Some(e), _) => (Some(s), Some(e)),
        (_, _, Some(d)) => (Some(d), Some(d)),
        (None, None, None) => return false,
        (s, e, None) => (s, e),
    };
    first.is_none_or(|f| hi.is_none_or(|h| f <= h))
        && last.is_none_or(|l| lo.is_none_or(|lo| l >= lo))
}

/// Every data file with the ids it holds.
fn files_with_ids(warehouse: &Path) -> Vec<(String, BTreeSet<String>)> {
    data_files(warehouse)
        .into_iter()
        .map(|p| {
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
                .unwrap()
                .build()
                .unwrap();
            let mut ids = BTreeSet::new();
            for batch in reader {
                let batch = batch.unwrap();
                let col = batch.column_by_name("id").unwrap().as_string::<i32>();
                for i in 0..col.len() {
                    ids.insert(col.value(i).to_string());
                }
            }
            (format!("file://{}", p.display()), ids)
        })
        .collect()
}

fn queries() -> Vec<String> {
    let mut q: Vec<String> = [
        // The query.
        "2015-01-01T00:00:00Z/2020-12-31T23:59:59Z",
        "2015-01-01/2015-01-31",
        "2020-12-01/2020-12-31",
        "2021-02-01T00:00:00Z",
        "../2013-01-01",
        "2023-06-01/..",
        "2014-12-31T23:59:59.999999Z/2015-01-01T00:00:00Z",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rng = Rng(0xfeed_f00d_0bad_cafe);
    for i in 0..40 {
        let a = at(2011, 6, 1) + rng.below(14 * 365) as i64 * DAY;
        let b = a + rng.below(400) as i64 * DAY;
        q.push(match i % 5 {
            0 => format!("../{}", iso(b)),
            1 => format!("{}/..", iso(a)),
            2 => iso(a),
            _ => format!("{}/{}", iso(a), iso(b)),
        });
    }
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_items_in_neighbouring_years_match_brute_force() {
    let f = fixture().await;
    let wh = Warehouse::open(&f.catalog(), None).await.unwrap();
    let bbox = parse_bbox(BBOX, "--bbox").unwrap();
    let cells = wh.cells_for_geometry(&bbox).await.unwrap();
    let files = files_with_ids(&f.root.join("warehouse"));
    assert!(
        files.len() > 20,
        "several files per bucket: {}",
        files.len()
    );
    let mut checked_files = 0;
    for text in queries() {
        let d = DatetimeInterval::parse(&text, "--datetime").unwrap();
        let (lo, hi) = (
            d.start.map(|t| t.timestamp_micros()),
            d.end.map(|t| t.timestamp_micros()),
        );
        let want: BTreeSet<String> = f
            .times
            .iter()
            .filter(|(_, t)| matches(**t, lo, hi))
            .map(|(id, _)| id.clone())
            .collect();
        // Every item lies inside the box, so the spatial part keeps them all.
        let req = SearchRequest::new()
            .with_intersects(bbox.clone())
            .with_datetime(d);
        let got: Vec<Json> = wh.search(&req).await.unwrap().try_collect().await.unwrap();
        let got_ids: BTreeSet<String> = got
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got.len(), got_ids.len(), "{text}: an item returned twice");
        assert_eq!(got_ids, want, "{text}");

        // `files` never omits a file of the query's cells holding a matching item.
        let listed: BTreeSet<String> = wh
            .file_paths(Some(&bbox), d.start, d.end)
            .await
            .unwrap()
            .into_iter()
            .collect();
        for (path, ids) in &files {
            let in_cells = cells
                .iter()
                .any(|c| path.contains(&format!("grid_partition={c}/")));
            if in_cells && ids.iter().any(|id| want.contains(id)) {
                assert!(
                    listed.contains(path),
                    "{text}: {path} holds a match but was pruned"
                );
                checked_files += 1;
            }
        }
    }
    // The two pairs of the issue come back for the query.
    let d =
        DatetimeInterval::parse("2015-01-01T00:00:00Z/2020-12-31T23:59:59Z", "--datetime").unwrap();
    let req = SearchRequest::new().with_intersects(bbox).with_datetime(d);
    let got: Vec<Json> = wh.search(&req).await.unwrap().try_collect().await.unwrap();
    for id in ["pair_2021_reaching_2020", "pair_2014_reaching_2015"] {
        assert!(got.iter().any(|i| i["id"] == id), "{id} missing");
    }
    assert!(checked_files > 100, "{checked_files}");
}

/// Pruning still prunes: a narrow interval reads far fewer files than the whole table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_interval_prunes_files() {
    let f = fixture().await;
    let wh = Warehouse::open(&f.catalog(), None).await.unwrap();
    let all = wh.file_paths(None, None, None).await.unwrap();
    let t = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
    let narrow = wh
        .file_paths(None, t("2013-03-01T00:00:00Z"), t("2013-03-02T00:00:00Z"))
        .await
        .unwrap();
    assert!(!narrow.is_empty());
    assert!(
        narrow.len() * 2 < all.len(),
        "{} of {} files kept",
        narrow.len(),
        all.len()
    );
}

/// The CLI's `search` and `files` agree with the library on the query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_search_returns_the_interval_pairs() {
    let f = fixture().await;
    let out = run(cli().args([
        "search",
        "--catalog",
        &f.catalog(),
        "--bbox",
        BBOX,
        "--datetime",
        "2015-01-01T00:00:00Z/2020-12-31T23:59:59Z",
        "--format",
        "ndjson",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"pair_2021_reaching_2020\""));
    assert!(text.contains("\"pair_2014_reaching_2015\""));
}
