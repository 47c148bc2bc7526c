//! Native search on a generated warehouse, checked against a brute-force scan of the source
//! items (geometry with `geo`, times with `chrono`, the CQL2 filter written out by hand).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use common::*;
use earthcatalog::pipeline::ingest;
use earthcatalog::query::{
    DatetimeInterval, DecodedFiles, Fields, SearchRequest, SortBy, Warehouse, parse_bbox,
    parse_filter, parse_geometry, parse_point,
};
use earthcatalog::report::NoReporter;
use futures::{StreamExt, TryStreamExt};
use geo::{Intersects, Translate};
use geo_types::{Coord, Geometry, LineString, MultiPolygon, Polygon};
use serde_json::Value as Json;

const ITEMS: u64 = 300;
const SEED: u64 = 5;

struct Fixture {
    ds: Dataset,
    /// Source items by id (several versions for a duplicated id).
    items: HashMap<String, Vec<Json>>,
}

impl Fixture {
    fn catalog(&self) -> String {
        self.ds.path("catalog.db")
    }
}

/// One warehouse for every test: built once, on its own runtime.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let ds = Dataset::synth(ITEMS, SEED).await;
                let mut opts = ds.options(2);
                // Several chunks, so buckets hold several files.
                opts.chunk_items = 100;
                let m = ingest(&opts, &NoReporter).await.unwrap();
                assert_eq!(m.failed, 0);
                let mut items: HashMap<String, Vec<Json>> = HashMap::new();
                for path in walk(&ds.dir.path().join("items")) {
                    let v: Json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                    items
                        .entry(v["id"].as_str().unwrap().to_string())
                        .or_default()
                        .push(v);
                }
                Fixture { ds, items }
            })
        })
        .join()
        .unwrap()
    })
}

// ---- brute force ---------------------------------------------------------------------------

fn parse_time(s: &str) -> Option<i64> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc).timestamp_micros());
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(d.and_utc().timestamp_micros());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros())
}

fn prop_time(item: &Json, name: &str) -> Option<i64> {
    item["properties"].get(name)?.as_str().and_then(parse_time)
}

/// Longitudes unwrapped so consecutive vertices differ by at most 180°; a ring that goes once
/// around the globe is closed along the pole on its side (the footprint reading of docs/decisions.md).
fn unwrap_ring(ls: &LineString<f64>, ring: bool) -> LineString<f64> {
    let mut out: Vec<Coord<f64>> = Vec::new();
    for c in ls.coords() {
        let mut c = *c;
        if let Some(prev) = out.last() {
            while c.x - prev.x > 180.0 {
                c.x -= 360.0;
            }
            while c.x - prev.x < -180.0 {
                c.x += 360.0;
            }
        }
        out.push(c);
    }
    if ring && out.len() > 1 {
        let (first, last) = (out[0], *out.last().unwrap());
        if (last.x - first.x).abs() > 180.0 {
            let mean = out.iter().map(|c| c.y).sum::<f64>() / out.len() as f64;
            let pole = if mean < 0.0 { -90.0 } else { 90.0 };
            out.push(Coord { x: last.x, y: pole });
            out.push(Coord {
                x: first.x,
                y: pole,
            });
            out.push(first);
        }
    }
    LineString::from(out)
}

fn unwrap_geometry(g: Geometry<f64>) -> Geometry<f64> {
    let poly = |p: Polygon<f64>| {
        let (ext, holes) = p.into_inner();
        Polygon::new(
            unwrap_ring(&ext, true),
            holes.iter().map(|h| unwrap_ring(h, true)).collect(),
        )
    };
    match g {
        Geometry::Polygon(p) => Geometry::Polygon(poly(p)),
        Geometry::MultiPolygon(mp) => {
            Geometry::MultiPolygon(MultiPolygon::new(mp.0.into_iter().map(poly).collect()))
        }
        Geometry::LineString(l) => Geometry::LineString(unwrap_ring(&l, false)),
        other => other,
    }
}

fn item_geometry(item: &Json) -> Option<Geometry<f64>> {
    let g: geojson::Geometry = serde_json::from_value(item.get("geometry")?.clone()).ok()?;
    Geometry::<f64>::try_from(g).ok()
}

fn geometry_matches(item: &Json, query: &Geometry<f64>) -> bool {
    let Some(g) = item_geometry(item) else {
        return false;
    };
    let g = unwrap_geometry(g);
    [-360.0, 0.0, 360.0]
        .iter()
        .any(|dx| query.intersects(&g.translate(*dx, 0.0)))
}

/// STAC item search: the item's extent is [start_datetime, end_datetime] when it has both,
/// else its datetime; half an interval without datetime is open on the other side.
fn datetime_matches(item: &Json, lo: Option<i64>, hi: Option<i64>) -> bool {
    let (d, s, e) = (
        prop_time(item, "datetime"),
        prop_time(item, "start_datetime"),
        prop_time(item, "end_datetime"),
    );
    let (first, last) = match (s, e, d) {
        (Some(s), Some(e), _) => (Some(s), Some(e)),
        (_, _, Some(d)) => (Some(d), Some(d)),
        (None, None, None) => return false,
        (s, e, None) => (s, e),
    };
    first.is_none_or(|f| hi.is_none_or(|h| f <= h))
        && last.is_none_or(|l| lo.is_none_or(|lo| l >= lo))
}

/// Ids of items (any version) for which `pred` holds.
fn brute(pred: impl Fn(&Json) -> bool) -> BTreeSet<String> {
    fixture()
        .items
        .iter()
        .filter(|(_, versions)| versions.iter().any(&pred))
        .map(|(id, _)| id.clone())
        .collect()
}

async fn search(req: &SearchRequest) -> Vec<Json> {
    let wh = Warehouse::open(&fixture().catalog(), None).await.unwrap();
    wh.search(req).await.unwrap().try_collect().await.unwrap()
}

/// Search, check there are no duplicates, and return the id set.
async fn search_ids(req: &SearchRequest) -> BTreeSet<String> {
    let items = search(req).await;
    let ids: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), set.len(), "an item was returned twice");
    set
}

fn interval(text: &str) -> (DatetimeInterval, Option<i64>, Option<i64>) {
    let d = DatetimeInterval::parse(text, "--datetime").unwrap();
    (
        d,
        d.start.map(|t| t.timestamp_micros()),
        d.end.map(|t| t.timestamp_micros()),
    )
}

async fn check_spatial(name: &str, query: Geometry<f64>, min_expected: usize) {
    let got = search_ids(&SearchRequest::new().with_intersects(query.clone())).await;
    let want = brute(|i| geometry_matches(i, &query));
    assert_eq!(got, want, "{name}");
    assert!(
        want.len() >= min_expected,
        "{name}: only {} matches",
        want.len()
    );
}

// ---- golden queries ------------------------------------------------------------------------

#[tokio::test]
async fn spatial_queries_match_brute_force() {
    let f = fixture();
    // A point at the first vertex of a regular polygon item.
    let item = f
        .items
        .values()
        .map(|v| &v[0])
        .find(|i| i["geometry"]["type"] == "Polygon" && i["properties"]["datetime"].is_string())
        .unwrap();
    let c = &item["geometry"]["coordinates"][0][0];
    let point = parse_point(
        &format!("{},{}", c[0].as_f64().unwrap(), c[1].as_f64().unwrap()),
        "--point",
    )
    .unwrap();
    check_spatial("point", point.clone(), 1).await;

    // A bbox over Alaska spanning several res-2 cells.
    let alaska = parse_bbox("-155,58,-135,66", "--bbox").unwrap();
    let wh = Warehouse::open(&f.catalog(), None).await.unwrap();
    assert!(wh.cells_for_geometry(&alaska).await.unwrap().len() > 5);
    check_spatial("bbox", alaska, 2).await;
    // The bbox covering rules rows out before their geometries are decoded.
    let (items, stats) = wh
        .search_with_stats(&SearchRequest::new().with_intersects(point.clone()))
        .await
        .unwrap();
    let _: Vec<Json> = items.try_collect().await.unwrap();
    let s = stats.snapshot();
    assert!(
        s.geometries_decoded < s.rows_scanned && s.geometries_decoded >= s.rows_matched,
        "{s:?}"
    );

    // A MultiPolygon: Greenland and the Himalaya.
    let multi = parse_geometry(
        r#"{"type":"MultiPolygon","coordinates":[
            [[[-55,60],[-20,60],[-20,80],[-55,80],[-55,60]]],
            [[[75,27],[95,27],[95,36],[75,36],[75,27]]]]}"#,
        "--intersects",
    )
    .unwrap();
    check_spatial("multipolygon", multi, 2).await;

    // Antimeridian: the Ross Ice Shelf, minx > maxx.
    let ross = parse_bbox("160,-86,-140,-70", "--bbox").unwrap();
    check_spatial("antimeridian bbox", ross, 2).await;

    // Polar region around the South Pole.
    let polar = parse_bbox("-180,-90,180,-86", "--bbox").unwrap();
    check_spatial("south polar cap", polar, 1).await;

    // Boxes wider than 180° (up to the whole world) are not antimeridian crossings.
    let world = parse_bbox("-180,-90,180,90", "--bbox").unwrap();
    check_spatial("whole world", world, 250).await;
    let wide = parse_bbox("-170,-80,100,80", "--bbox").unwrap();
    check_spatial("270° wide bbox", wide, 100).await;

    // Nothing there.
    let ocean = parse_bbox("-140,-40,-130,-30", "--bbox").unwrap();
    check_spatial("empty ocean", ocean, 0).await;
}

#[tokio::test]
async fn datetime_intervals_match_brute_force() {
    // An instant: the date-only item's datetime (midnight UTC).
    let date_only = fixture()
        .items
        .values()
        .flatten()
        .find_map(|i| {
            i["properties"]["datetime"]
                .as_str()
                .filter(|d| d.len() == 10)
        })
        .expect("the dataset has a date-only datetime")
        .to_string();
    for text in [
        "2020-01-01T00:00:00Z/..",
        "../1999-12-31T23:59:59Z",
        "2015-01-01/2016-12-31T23:59:59.999999Z",
        &format!("{date_only}T00:00:00Z"),
        &date_only,
    ] {
        let (d, lo, hi) = interval(text);
        let got = search_ids(&SearchRequest::new().with_datetime(d)).await;
        let want = brute(|i| datetime_matches(i, lo, hi));
        assert_eq!(got, want, "{text}");
        assert!(!want.is_empty(), "{text}");
    }
}

#[tokio::test]
async fn items_without_datetime_match_by_start_and_end() {
    let f = fixture();
    let undated: Vec<&Json> = f
        .items
        .values()
        .flatten()
        .filter(|i| !i["properties"]["datetime"].is_string())
        .collect();
    assert!(
        !undated.is_empty(),
        "the dataset has items without datetime"
    );
    for item in undated {
        let s = prop_time(item, "start_datetime").unwrap();
        let e = prop_time(item, "end_datetime").unwrap();
        // An interval overlapping only the end of the item's range.
        let lo = DateTime::<Utc>::from_timestamp_micros(e - 1).unwrap();
        let hi = DateTime::<Utc>::from_timestamp_micros(e + 86_400_000_000).unwrap();
        let d = DatetimeInterval {
            start: Some(lo),
            end: Some(hi),
        };
        let got = search_ids(&SearchRequest::new().with_datetime(d)).await;
        assert!(got.contains(item["id"].as_str().unwrap()));
        assert_eq!(
            got,
            brute(|i| datetime_matches(
                i,
                Some(lo.timestamp_micros()),
                Some(hi.timestamp_micros())
            ))
        );
        // An interval entirely before it.
        let before = DatetimeInterval {
            start: None,
            end: DateTime::<Utc>::from_timestamp_micros(s - 1),
        };
        let got = search_ids(&SearchRequest::new().with_datetime(before)).await;
        assert!(!got.contains(item["id"].as_str().unwrap()));
    }
}

fn cql2_by_hand(item: &Json) -> bool {
    let p = &item["properties"];
    p["percent_valid_pixels"].as_f64().is_some_and(|v| v > 50.0)
        && matches!(p["platform"].as_str(), Some("LC08" | "S2A"))
}

#[tokio::test]
async fn cql2_ids_and_combined_filters_match_brute_force() {
    let filter = parse_filter(
        "percent_valid_pixels > 50 AND platform IN ('LC08','S2A')",
        None,
        "--filter",
    )
    .unwrap();
    let got = search_ids(&SearchRequest::new().with_filter(filter.clone())).await;
    let want = brute(cql2_by_hand);
    assert!(want.len() > 5);
    assert_eq!(got, want);

    // The same filter as CQL2 JSON.
    let json = parse_filter(
        r#"{"op":"and","args":[{"op":">","args":[{"property":"percent_valid_pixels"},50]},
            {"op":"in","args":[{"property":"platform"},["LC08","S2A"]]}]}"#,
        Some("cql2-json"),
        "--filter",
    )
    .unwrap();
    assert_eq!(
        search_ids(&SearchRequest::new().with_filter(json)).await,
        want
    );

    // ids.
    let mut ids: Vec<String> = fixture().items.keys().take(7).cloned().collect();
    ids.push("no-such-item".into());
    let got = search_ids(&SearchRequest::new().with_ids(ids.clone())).await;
    let want: BTreeSet<String> = ids[..7].iter().cloned().collect();
    assert_eq!(got, want);

    // Region + time + filter together.
    let region = parse_bbox("-75,55,-10,85", "--bbox").unwrap();
    let (d, lo, hi) = interval("2010-01-01/..");
    let req = SearchRequest::new()
        .with_intersects(region.clone())
        .with_datetime(d)
        .with_filter(filter);
    let got = search_ids(&req).await;
    let want =
        brute(|i| geometry_matches(i, &region) && datetime_matches(i, lo, hi) && cql2_by_hand(i));
    assert_eq!(got, want);

    // Collections.
    let got = search_ids(&SearchRequest::new().with_collections(["itslive-granules"])).await;
    let want = brute(|i| i["collection"] == "itslive-granules");
    assert!(!want.is_empty() && want.len() < fixture().items.len());
    assert_eq!(got, want);
}

#[tokio::test]
async fn everything_once_newest_version_sorted_and_capped() {
    let f = fixture();
    let all = search(&SearchRequest::new()).await;
    assert_eq!(all.len(), f.items.len());
    // The duplicated id comes back in its newest version.
    let (dup_id, versions) = f.items.iter().find(|(_, v)| v.len() > 1).unwrap();
    let newest = versions
        .iter()
        .max_by_key(|v| prop_time(v, "updated"))
        .unwrap();
    let got = all.iter().find(|i| i["id"] == dup_id.as_str()).unwrap();
    assert_eq!(
        got["properties"]["updated"],
        newest["properties"]["updated"]
    );

    // sortby + max_items + fields.
    let req = SearchRequest {
        sortby: SortBy::parse_list("-datetime", "--sortby").unwrap(),
        max_items: Some(10),
        fields: Fields::parse("id,properties.datetime"),
        ..Default::default()
    };
    let top = search(&req).await;
    assert_eq!(top.len(), 10);
    let times: Vec<i64> = top
        .iter()
        .map(|i| prop_time(i, "datetime").unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let mut all_times: Vec<i64> = all
        .iter()
        .filter_map(|i| prop_time(i, "datetime"))
        .collect();
    all_times.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, all_times[..10]);
    assert!(top[0].get("assets").is_none() && top[0].get("geometry").is_none());
    assert_eq!(top[0]["properties"].as_object().unwrap().len(), 1);
    // limit caps streaming results too.
    let capped = search(&SearchRequest {
        limit: Some(3),
        ..Default::default()
    })
    .await;
    assert_eq!(capped.len(), 3);
}

/// The server's cache of decoded files: a search answered from it returns what a search reading
/// the files returns (same items, same order, same bytes), and repeating searches hits it.
#[tokio::test]
async fn searches_answered_from_decoded_files_equal_searches_reading_them() {
    let (d, _, _) = interval("2016-01-01T00:00:00Z/2021-12-31T23:59:59Z");
    let requests = [
        SearchRequest::new().with_intersects(parse_bbox("-155,58,-135,66", "--bbox").unwrap()),
        SearchRequest::new()
            .with_intersects(parse_bbox("-180,-90,180,90", "--bbox").unwrap())
            .with_datetime(d),
        SearchRequest {
            filter: Some(parse_filter("platform = 'LC08'", None, "--filter").unwrap()),
            ..Default::default()
        },
        SearchRequest::new(),
    ];
    let cache = Arc::new(DecodedFiles::new(64 << 20));
    for (n, request) in requests.iter().enumerate() {
        let read = search(request).await;
        assert!(!read.is_empty(), "request {n} matches nothing");
        let cached = SearchRequest {
            decoded_files: Some(Arc::clone(&cache)),
            ..request.clone()
        };
        for pass in ["filling the cache", "from the cache"] {
            assert_eq!(search(&cached).await, read, "request {n}, {pass}");
        }
    }
    let stats = cache.stats();
    assert!(stats.files > 0 && stats.bytes > 0, "{stats:?}");
    assert!(
        stats.hits >= stats.files,
        "repeated searches did not hit: {stats:?}"
    );

    // A cache too small for any file holds none and answers the same.
    let tiny = Arc::new(DecodedFiles::new(1));
    let request = SearchRequest {
        decoded_files: Some(Arc::clone(&tiny)),
        ..requests[3].clone()
    };
    assert_eq!(search(&request).await.len(), fixture().items.len());
    assert_eq!(tiny.stats().files, 0);
}

/// A streaming search counts the bytes it holds (decoded rows not yet returned, the ids it
/// returned) while it is suspended, and gives them all back when it is dropped; rows shared
/// with the decoded-file cache are not counted.
#[tokio::test]
async fn a_suspended_search_counts_what_it_holds_and_releases_it() {
    let wh = Warehouse::open(&fixture().catalog(), None).await.unwrap();
    let held = |request: SearchRequest| {
        let wh = &wh;
        async move {
            let (mut found, stats) = wh.search_found(&request).await.unwrap();
            // One item at a time, the stream suspended (not polled) in between: what it holds
            // then is the ids returned so far plus the rest of the current bucket's rows (none
            // when that bucket had one row). Summed over the first ten pauses, so that some
            // pause falls inside a bucket of several rows whatever the files' order.
            let mut suspended = 0;
            for _ in 0..10 {
                let Some(item) = found.next().await else {
                    break;
                };
                item.unwrap();
                suspended += stats.held_bytes();
            }
            drop(found);
            // A bucket whose decoding had started finishes on its blocking thread and drops
            // its rows there: wait for that (bounded), not for a fixed time.
            for _ in 0..1000 {
                if stats.held_bytes() == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            (suspended, stats.held_bytes())
        }
    };
    let (suspended, after) = held(SearchRequest::new()).await;
    assert!(suspended > 0, "a suspended search holds rows and ids");
    assert_eq!(
        after, 0,
        "dropping the stream releases everything it counted"
    );

    // The same search from a cache holding its files: the rows are the cache's.
    let cache = Arc::new(DecodedFiles::new(64 << 20));
    let cached = SearchRequest {
        decoded_files: Some(Arc::clone(&cache)),
        ..SearchRequest::new()
    };
    let _ = search(&cached).await;
    let (from_cache, after) = held(cached).await;
    assert!(
        from_cache < suspended,
        "rows shared with the cache were counted: {from_cache} >= {suspended}"
    );
    assert_eq!(after, 0);
}

// ---- rehydration ---------------------------------------------------------------------------

/// Equal up to the documented normalisations: numbers compared as f64, timestamps as instants,
/// null properties absent.
fn same(a: &Json, b: &Json, path: &str, diffs: &mut Vec<String>) {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            if x.as_f64() != y.as_f64() {
                diffs.push(format!("{path}: {x} != {y}"));
            }
        }
        (Json::String(x), Json::String(y)) if x != y => match (parse_time(x), parse_time(y)) {
            (Some(tx), Some(ty)) if tx == ty => {}
            _ => diffs.push(format!("{path}: {x:?} != {y:?}")),
        },
        (Json::Array(x), Json::Array(y)) => {
            if x.len() != y.len() {
                diffs.push(format!("{path}: array lengths {} != {}", x.len(), y.len()));
            }
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                same(x, y, &format!("{path}[{i}]"), diffs);
            }
        }
        (Json::Object(x), Json::Object(y)) => {
            let keys: BTreeSet<&String> = x
                .iter()
                .chain(y.iter())
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k)
                .collect();
            for k in keys {
                let (xv, yv) = (
                    x.get(k).unwrap_or(&Json::Null),
                    y.get(k).unwrap_or(&Json::Null),
                );
                same(xv, yv, &format!("{path}.{k}"), diffs);
            }
        }
        _ => {
            if a != b {
                diffs.push(format!("{path}: {a} != {b}"));
            }
        }
    }
}

#[tokio::test]
async fn searched_items_equal_their_source_json() {
    let f = fixture();
    let all = search(&SearchRequest::new()).await;
    let mut exact = 0;
    for item in &all {
        let id = item["id"].as_str().unwrap();
        let source = f.items[id]
            .iter()
            .max_by_key(|v| prop_time(v, "updated"))
            .unwrap();
        let mut diffs = Vec::new();
        same(source, item, "", &mut diffs);
        // An empty Polygon is stored as no geometry.
        diffs.retain(|d| {
            !(d.starts_with(".geometry")
                && source["geometry"]["coordinates"] == serde_json::json!([]))
        });
        assert!(diffs.is_empty(), "{id}: {diffs:#?}");
        if source == item {
            exact += 1;
        }
    }
    // Most items round-trip byte-for-byte as parsed JSON, without any normalisation.
    assert!(exact * 2 > all.len(), "only {exact} of {} exact", all.len());
    // grid_partition only when asked for.
    assert!(
        all.iter()
            .all(|i| i["properties"].get("grid_partition").is_none())
    );
    let with = search(&SearchRequest {
        max_items: Some(5),
        with_grid_partition: true,
        ..Default::default()
    })
    .await;
    assert!(
        with.iter()
            .all(|i| i["properties"]["grid_partition"].is_string())
    );
}

// ---- CLI -----------------------------------------------------------------------------------

#[test]
fn cli_ndjson_geojson_and_bad_input() {
    let f = fixture();
    let catalog = f.catalog();
    let out = run(cli().args([
        "search",
        "--catalog",
        &catalog,
        "--bbox",
        "-155,58,-135,66",
        "--format",
        "ndjson",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let region = parse_bbox("-155,58,-135,66", "--bbox").unwrap();
    let want = brute(|i| geometry_matches(i, &region));
    let got: BTreeSet<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Json>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text.lines().count(), want.len());
    assert_eq!(got, want);

    let out = run(cli().args([
        "search",
        "--catalog",
        &catalog,
        "--filter",
        "percent_valid_pixels > 50 AND platform IN ('LC08','S2A')",
        "--max-items",
        "4",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fc: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fc["type"], "FeatureCollection");
    assert_eq!(fc["features"].as_array().unwrap().len(), 4);
    assert_eq!(fc["numberReturned"], 4);

    for (arg, value) in [
        ("--filter", "percent_valid_pixels >>> 50"),
        ("--datetime", "2020-13-45"),
        ("--bbox", "1,2,3"),
        ("--intersects", "POLYGON((0 0, 1 0"),
        (
            "--intersects",
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,1]]]}"#,
        ),
        ("--filter", r#"{"op":"frobnicate","args":[1,2]}"#),
        ("--sortby", "+,"),
    ] {
        let out = run(cli().args(["search", "--catalog", &catalog, arg, value]));
        assert_eq!(out.status.code(), Some(2), "{arg} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(arg), "{arg}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{arg}: nothing on stdout after an error"
        );
    }
    // Filters nested too deep for the parser's recursion are refused (they aborted the process
    // with a stack overflow before).
    for deep in [
        format!("{}a = 1{}", "(".repeat(1500), ")".repeat(1500)),
        format!("{}a = 1", "NOT ".repeat(600)),
    ] {
        let out = run(cli().args(["search", "--catalog", &catalog, "--filter", &deep]));
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("nests"));
        assert!(out.stdout.is_empty());
    }
}

/// A property most items lack is NULL for them: no match, no error, complete output.
#[test]
fn cli_filter_on_a_missing_property_is_null_not_an_error() {
    let f = fixture();
    let out = run(cli().args([
        "search",
        "--catalog",
        &f.catalog(),
        "--filter",
        "eo:cloud_cover < 50 OR platform = 'LC08'",
        "--stats",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fc: Json = serde_json::from_slice(&out.stdout).expect("a complete FeatureCollection");
    let got: BTreeSet<String> = fc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let cloud = |i: &Json| i["properties"]["eo:cloud_cover"].as_f64();
    let want =
        brute(|i| i["properties"]["platform"] == "LC08" || cloud(i).is_some_and(|c| c < 50.0));
    assert!(!want.is_empty());
    let clouded = brute(|i| cloud(i).is_some());
    assert!(
        clouded.len() * 4 < f.items.len(),
        "most items lack eo:cloud_cover"
    );
    assert_eq!(got, want);
    let out = run(cli().args([
        "search",
        "--catalog",
        &f.catalog(),
        "--filter",
        "eo:cloud_cover < 50",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fc: Json = serde_json::from_slice(&out.stdout).unwrap();
    let want = brute(|i| cloud(i).is_some_and(|c| c < 50.0));
    assert_eq!(fc["numberReturned"], want.len());
}

#[tokio::test]
async fn cli_json_output_splices_stored_text_exactly_as_parsed_items_serialise() {
    // The CLI writes assets/links/bbox/stac_extensions from their stored text; each line must
    // be byte-identical to serialising the fully parsed item the library returns — with and
    // without a CQL2 filter (which evaluates on the item).
    let filter = "percent_valid_pixels > 50";
    for with_filter in [false, true] {
        let mut req = SearchRequest::new()
            .with_bbox(-180.0, -90.0, 180.0, 90.0)
            .unwrap();
        let mut args = vec![
            "search".to_string(),
            "--catalog".into(),
            fixture().catalog(),
            "--bbox".into(),
            "-180,-90,180,90".into(),
            "--format".into(),
            "ndjson".into(),
        ];
        if with_filter {
            req.filter = Some(parse_filter(filter, None, "--filter").unwrap());
            args.extend(["--filter".into(), filter.into()]);
        }
        let lib = search(&req).await;
        assert!(
            lib.len() > if with_filter { 20 } else { 250 },
            "{} items",
            lib.len()
        );
        let expected: HashMap<String, String> = lib
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_string(),
                    serde_json::to_string(i).unwrap(),
                )
            })
            .collect();
        let out = run(cli().args(&args));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        assert_eq!(lines.len(), expected.len());
        for line in lines {
            let item: Json = serde_json::from_str(line).unwrap();
            let id = item["id"].as_str().unwrap();
            assert!(
                item["assets"].is_object(),
                "{id}: assets is JSON, not a string"
            );
            assert_eq!(line, expected[id], "{id}");
        }
    }
}
