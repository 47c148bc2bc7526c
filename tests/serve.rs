//! `earthcatalog serve`: paging exact across a snapshot change, 410 for vanished snapshots and
//! files, every bad input a 400 naming its parameter, back-pressure, timeouts, GeoParquet
//! responses (in process, through the framework-free `Api`); pystac-client against the server
//! equal to `earthcatalog search` and a brute-force scan, a handler panic that leaves the server
//! running, and a graceful SIGTERM (the binary).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use earthcatalog::query::{DatetimeInterval, footprint_intersects, parse_bbox, temporal_match};
use earthcatalog::server::{Api, ServerOptions};
use earthcatalog::store::Location;
use earthcatalog::synth::SynthOptions;
use serde_json::{Value as Json, json};

/// Ingest `count` synthetic items of `seed` into the catalog in `dir` (one snapshot).
async fn add(dir: &std::path::Path, seed: u64, count: u64, special: f64) -> String {
    let synth = SynthOptions::new(seed, count).with_special_fraction(special);
    ingest_synthetic(dir, &format!("data-{seed}"), &synth).await
}

fn options(catalog: &str) -> ServerOptions {
    let mut o = ServerOptions::new(catalog);
    o.reload_every = None;
    o
}

async fn call(api: &Api, method: &str, uri: &str, body: &str) -> (u16, Json, http::HeaderMap) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "test.local")
        .body(Bytes::from(body.to_string()))
        .unwrap();
    let r = api.handle(req).await;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let json = serde_json::from_slice(r.body()).unwrap_or(Json::Null);
    (status, json, headers)
}

fn ids(page: &Json) -> Vec<String> {
    page_ids(page)
}

fn next_uri(page: &Json) -> Option<String> {
    next_link(page, "http://test.local")
}

/// Page through a GET search to the end.
async fn page_all(api: &Api, first: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut uri = Some(first.to_string());
    while let Some(u) = uri {
        let (status, page, _) = call(api, "GET", &u, "").await;
        assert_eq!(status, 200, "{u}: {page}");
        out.extend(ids(&page));
        uri = next_uri(&page);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_stays_on_its_snapshot_across_a_reload_and_vanished_snapshots_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = add(dir.path(), 21, 150, 0.05).await;
    let api = Api::open(options(&catalog)).await.unwrap();
    let before = api.snapshot().snapshot_id();
    let all_a: BTreeSet<String> = page_all(&api, "/search?limit=500")
        .await
        .into_iter()
        .collect();
    assert!(all_a.len() > 100);

    // Two pages, then the catalog changes underneath.
    let (_, p1, _) = call(&api, "GET", "/search?limit=7", "").await;
    let t2 = next_uri(&p1).unwrap();
    let (_, p2, _) = call(&api, "GET", &t2, "").await;
    assert_eq!(p2["numberReturned"], 7);
    let t3 = next_uri(&p2).unwrap();
    add(dir.path(), 22, 80, 0.0).await;
    assert!(
        api.reload_if_changed().await.unwrap(),
        "the new snapshot is noticed"
    );
    assert!(!api.reload_if_changed().await.unwrap(), "and loaded once");
    assert_ne!(api.snapshot().snapshot_id(), before);

    // The rest of the old search: every item of the old snapshot exactly once.
    let mut seen = ids(&p1);
    seen.extend(ids(&p2));
    seen.extend(page_all(&api, &t3).await);
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no item twice");
    assert_eq!(unique, all_a, "exactly the old snapshot's items");
    // A new search sees the new items.
    let all_b: BTreeSet<String> = page_all(&api, "/search?limit=500")
        .await
        .into_iter()
        .collect();
    assert!(all_b.len() > all_a.len() && all_a.is_subset(&all_b));

    // Paging resumed the suspended streams: no page was recomputed.
    let (_, health, _) = call(&api, "GET", "/_health", "").await;
    assert!(health["pages_resumed"].as_u64().unwrap() > 5, "{health}");
    assert_eq!(health["pages_recomputed"], 0, "{health}");
    // A token already used is a cache miss: the page is recomputed, identically.
    let (_, again, _) = call(&api, "GET", &t2, "").await;
    assert_eq!(ids(&again), ids(&p2));
    let (_, health, _) = call(&api, "GET", "/_health", "").await;
    assert_eq!(health["pages_recomputed"], 1, "{health}");

    // Tokens are validated.
    let token = t3.split("token=").nth(1).unwrap().to_string();
    let (status, err, _) = call(
        &api,
        "GET",
        &format!("/search?limit=7&bbox=0,0,1,1&token={token}"),
        "",
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["description"].as_str().unwrap().starts_with("token:"),
        "{err}"
    );
    let (status, err, _) = call(&api, "GET", "/search?token=bm90LWEtdG9rZW4", "").await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["description"].as_str().unwrap().contains("token"),
        "{err}"
    );

    // A token pinning a snapshot no longer in the history: 410, telling to restart.
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut decoded: Json = serde_json::from_slice(&engine.decode(&token).unwrap()).unwrap();
    decoded["s"] = json!(12345);
    let forged = engine.encode(decoded.to_string());
    let (status, err, _) = call(&api, "GET", &format!("/search?limit=7&token={forged}"), "").await;
    assert_eq!(status, 410, "{err}");
    assert!(
        err["description"].as_str().unwrap().contains("restart"),
        "{err}"
    );

    // Files deleted under a snapshot (a compaction's cleanup): 410, not 500. (A server that
    // holds a file decoded answers from memory, which is as right: a server that does not
    // has to read it.)
    let victim = data_files(&dir.path().join("warehouse")).pop().unwrap();
    std::fs::remove_file(&victim).unwrap();
    let api = Api::open(options(&catalog)).await.unwrap();
    let (status, err, _) = call(&api, "GET", "/search?limit=1000", "").await;
    assert_eq!(status, 410, "{err}");
    assert!(
        err["description"]
            .as_str()
            .unwrap()
            .contains("restart it without a token"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_parameter_and_load_is_shed() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = add(dir.path(), 23, 60, 0.0).await;
    let mut o = options(&catalog);
    o.max_body_bytes = 4096;
    o.max_vertices = 50;
    o.max_sort_items = 10;
    let api = Api::open(o).await.unwrap();
    let ring: Vec<String> = (0..60)
        .map(|i| format!("[{}, 0]", i as f64 / 100.0))
        .collect();
    let line = format!(
        r#"{{"type":"LineString","coordinates":[{}]}}"#,
        ring.join(",")
    );
    let deep = format!(
        "{}{{\"op\":\"=\",\"args\":[{{\"property\":\"a\"}},1]}}{}",
        "{\"op\":\"not\",\"args\":[".repeat(100),
        "]}".repeat(100)
    );
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        ("GET", "/search?bbox=1,2".into(), "".into(), 400, "bbox"),
        // Would be cut into ~1e10 pieces if the width were trusted before the range check.
        (
            "GET",
            "/search?bbox=-1e12,0,1e12,1".into(),
            "".into(),
            400,
            "bbox",
        ),
        (
            "POST",
            "/search".into(),
            r#"{"bbox": [-1e12, 0, 1e12, 1]}"#.into(),
            400,
            "bbox",
        ),
        (
            "GET",
            "/search?bbox=0,10,1,5".into(),
            "".into(),
            400,
            "bbox",
        ),
        (
            "GET",
            "/search?bbox=0,0,1,1&intersects=%7B%7D".into(),
            "".into(),
            400,
            "intersects",
        ),
        (
            "GET",
            "/search?datetime=yesterday".into(),
            "".into(),
            400,
            "datetime",
        ),
        (
            "GET",
            "/search?datetime=2020-01-01T00:00:00Z/2019-01-01T00:00:00Z".into(),
            "".into(),
            400,
            "datetime",
        ),
        (
            "GET",
            format!("/search?filter={}", enc("a >>> 1")),
            "".into(),
            400,
            "filter",
        ),
        (
            "GET",
            format!("/search?filter={}", enc(&"(".repeat(200))),
            "".into(),
            400,
            "filter",
        ),
        // Deeper than serde_json's recursion limit: refused while reading the body.
        (
            "POST",
            "/search".into(),
            format!(r#"{{"filter": {deep}}}"#),
            400,
            "body",
        ),
        (
            "POST",
            "/search".into(),
            json!({"filter": format!("{}a = 1{}", "(".repeat(100), ")".repeat(100))}).to_string(),
            400,
            "filter",
        ),
        (
            "GET",
            "/search?filter-lang=sql&filter=a%3D1".into(),
            "".into(),
            400,
            "filter",
        ),
        (
            "POST",
            "/search".into(),
            r#"{"filter": "a = 1", "filter-crs": 4326}"#.into(),
            400,
            "filter-crs",
        ),
        // An operator CQL2 does not define is named, not answered with an empty page.
        (
            "POST",
            "/search".into(),
            r#"{"filter": {"op": "frobnicate", "args": [1, 2]}}"#.into(),
            400,
            "frobnicate",
        ),
        // A ring of two positions is named, not answered with an empty page.
        (
            "POST",
            "/search".into(),
            r#"{"intersects": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}"#.into(),
            400,
            "exterior ring",
        ),
        ("GET", "/search?limit=abc".into(), "".into(), 400, "limit"),
        // Sorting holds every match in memory: more than --max-sort-items is refused.
        (
            "GET",
            "/search?sortby=-datetime".into(),
            "".into(),
            400,
            "sortby",
        ),
        ("GET", "/search?limit=0".into(), "".into(), 400, "limit"),
        (
            "POST",
            "/search".into(),
            r#"{"limit": -3}"#.into(),
            400,
            "limit",
        ),
        (
            "GET",
            "/search?token=%25%25".into(),
            "".into(),
            400,
            "token",
        ),
        (
            "GET",
            format!("/search?intersects={}", enc(&line)),
            "".into(),
            400,
            "intersects",
        ),
        (
            "GET",
            format!(
                "/search?intersects={}",
                enc(r#"{"type":"Point","coordinates":[500,0]}"#)
            ),
            "".into(),
            400,
            "intersects",
        ),
        ("POST", "/search".into(), "{not json".into(), 400, "body"),
        (
            "POST",
            "/search".into(),
            format!(r#"{{"ids": ["{}"]}}"#, "x".repeat(5000)),
            413,
            "body",
        ),
        ("GET", "/search?sortby=%2C".into(), "".into(), 400, "sortby"),
        ("GET", "/search?f=xml".into(), "".into(), 400, "f"),
        ("GET", "/collections/nope".into(), "".into(), 404, "nope"),
        (
            "GET",
            "/collections/nope/items".into(),
            "".into(),
            404,
            "nope",
        ),
        (
            "GET",
            "/collections/itslive-granules/items/nope".into(),
            "".into(),
            404,
            "nope",
        ),
        ("GET", "/nope".into(), "".into(), 404, "/nope"),
        ("DELETE", "/search".into(), "".into(), 405, "DELETE"),
        ("GET", "/collections/%ff".into(), "".into(), 400, "path"),
    ];
    for (method, uri, body, status, needle) in cases {
        let (got, err, headers) = call(&api, method, &uri, &body).await;
        assert_eq!(got, status, "{method} {uri}: {err}");
        let d = err["description"].as_str().unwrap_or_default();
        assert!(d.contains(needle), "{method} {uri}: {d}");
        assert!(err["code"].is_string(), "{err}");
        assert_eq!(headers["content-type"], "application/json");
    }
    // Limits above the maximum are clamped, not refused (STAC API).
    let (status, page, _) = call(&api, "GET", "/search?limit=100000000000000000000", "").await;
    assert_eq!(status, 200, "{page}");

    // A request over its time limit is a 504, not a hang.
    let mut o = options(&catalog);
    o.request_timeout = Duration::from_nanos(1);
    let slow = Api::open(o).await.unwrap();
    let (status, err, _) = call(&slow, "GET", "/search?limit=100", "").await;
    assert_eq!(status, 504, "{err}");
    assert!(
        err["description"].as_str().unwrap().contains("longer than"),
        "{err}"
    );
    // Health answers regardless.
    let (status, health, _) = call(&slow, "GET", "/_health", "").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");

    // One slot and no queue: a second concurrent request is shed with Retry-After.
    let mut o = options(&catalog);
    o.max_in_flight = 1;
    o.max_queued = 0;
    let busy = Arc::new(Api::open(o).await.unwrap());
    let (a, b) = tokio::join!(
        call(&busy, "GET", "/search?limit=1000", ""),
        call(&busy, "GET", "/search?limit=1000", "")
    );
    assert_eq!(a.0, 200);
    assert_eq!(b.0, 503, "{}", b.1);
    assert_eq!(b.2["retry-after"], "1");
    // Once the first is done, the slot is free again.
    assert_eq!(call(&busy, "GET", "/search?limit=1", "").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_come_as_geoparquet_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = add(dir.path(), 24, 60, 0.0).await;
    let api = Api::open(options(&catalog)).await.unwrap();
    let (_, page, _) = call(&api, "GET", "/search?limit=5", "").await;
    for (uri, accept) in [
        ("/search?limit=5&f=parquet", None),
        ("/search?limit=5", Some("application/vnd.apache.parquet")),
        (
            "/collections/itslive-granules/items?limit=5&f=parquet",
            None,
        ),
    ] {
        let mut req = http::Request::builder().uri(uri).header("host", "t");
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let r = api.handle(req.body(Bytes::new()).unwrap()).await;
        assert_eq!(r.status(), 200, "{uri}");
        assert_eq!(
            r.headers()["content-type"],
            "application/vnd.apache.parquet"
        );
        assert!(
            r.headers()["link"]
                .to_str()
                .unwrap()
                .contains("rel=\"next\"")
        );
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            r.body().clone(),
        )
        .unwrap();
        assert!(
            reader
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .unwrap()
                .iter()
                .any(|kv| kv.key == "geo")
        );
        let mut got = Vec::new();
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            let col = batch.column_by_name("id").unwrap();
            let s = arrow_cast::cast(col, &arrow_schema::DataType::Utf8).unwrap();
            use arrow_array::cast::AsArray;
            got.extend(s.as_string::<i32>().iter().flatten().map(str::to_string));
        }
        assert_eq!(got.len(), 5, "{uri}");
        if !uri.starts_with("/collections") {
            assert_eq!(got, ids(&page), "{uri}");
        }
    }
    // POST takes the format from `?f=` too; the next page's token comes in a header.
    let r = api
        .handle(
            http::Request::builder()
                .method("POST")
                .uri("/search?f=parquet")
                .header("host", "t")
                .body(Bytes::from(r#"{"limit": 5}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    assert!(r.headers().contains_key("next-token"));
    // A GeoParquet page needs its ids: excluding them is a 400 naming `fields`, not a 500.
    let (status, err, _) = call(&api, "GET", "/search?f=parquet&fields=-id", "").await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["description"].as_str().unwrap().starts_with("fields"),
        "{err}"
    );
}

/// pystac-client results by query name.
fn pystac(base: &str) -> HashMap<String, Json> {
    let script = format!(
        r#"
import json
from pystac_client import Client
c = Client.open("{base}/")
def ids(**kw):
    return [i["id"] for i in c.search(**kw).items_as_dicts()]
region = {{"type": "Polygon", "coordinates": [[[-150, 55], [-120, 55], [-120, 70], [-150, 70], [-150, 55]]]}}
out = {{}}
out["all"] = ids(limit=17)
out["all_post"] = ids(limit=23, method="POST")
out["bbox"] = ids(bbox=[-150, 55, -120, 70], limit=7)
out["intersects"] = ids(intersects=region, limit=9, method="POST")
out["intersects_get"] = ids(intersects=region, limit=9, method="GET")
out["datetime"] = ids(datetime="2018-01-01T00:00:00Z/2020-12-31T23:59:59Z", limit=13)
out["open_start"] = ids(datetime="../2010-01-01T00:00:00Z", limit=50)
out["filter"] = ids(filter="percent_valid_pixels > 50 AND platform IN ('LC08','S2A')", filter_lang="cql2-text", limit=9)
out["filter_json"] = ids(filter={{"op": "<", "args": [{{"property": "percent_valid_pixels"}}, 20]}}, filter_lang="cql2-json", method="POST", limit=9)
first = out["all"][:3]
out["ids"] = ids(ids=first)
out["sortby"] = [(i["id"], i["properties"].get("datetime")) for i in c.search(sortby="-properties.datetime", limit=11, max_items=40).items_as_dicts()]
item = next(c.search(fields={{"include": ["id", "properties.platform"], "exclude": []}}, limit=1, max_items=1, method="POST").items_as_dicts())
out["fields"] = sorted(item.keys())
out["fields_props"] = sorted(item["properties"].keys())
print(json.dumps(out))
"#
    );
    serde_json::from_str(python(&script).trim()).unwrap()
}

/// `earthcatalog search` items (NDJSON) for CLI flags.
fn cli_search(catalog: &str, flags: &[&str]) -> Vec<Json> {
    let out = run(cli()
        .args(["search", "--catalog", catalog, "--format", "ndjson"])
        .args(flags));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn id_set(items: &[Json]) -> BTreeSet<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn once(v: &Json) -> BTreeSet<String> {
    let list = strings(v);
    let set: BTreeSet<String> = list.iter().cloned().collect();
    assert_eq!(set.len(), list.len(), "an item came twice: {list:?}");
    set
}

fn micros(item: &Json, name: &str) -> Option<i64> {
    let s = item["properties"].get(name)?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

#[test]
fn pystac_client_pages_to_the_same_items_as_earthcatalog_search_and_a_brute_force_scan() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let catalog = rt.block_on(add(dir.path(), 25, 400, 0.1));
    let server = ServeProcess::start(&catalog, &["--reload-secs", "0"], &[]);
    let got = pystac(&server.base);

    // Everything, paged 17 and 23 at a time, GET and POST.
    let every = cli_search(&catalog, &[]);
    let all = id_set(&every);
    assert_eq!(all.len(), every.len());
    assert_eq!(once(&got["all"]), all);
    assert_eq!(once(&got["all_post"]), all);

    // Region and time against the CLI and a brute-force scan of every stored item.
    let region = parse_bbox("-150,55,-120,70", "bbox").unwrap();
    let brute_region: BTreeSet<String> = every
        .iter()
        .filter(|i| {
            earthcatalog::grid::geometry_from_json(&i["geometry"])
                .ok()
                .flatten()
                .is_some_and(|g| footprint_intersects(&g, &region))
        })
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!brute_region.is_empty());
    let cli_region = id_set(&cli_search(&catalog, &["--bbox", "-150,55,-120,70"]));
    assert_eq!(cli_region, brute_region);
    for q in ["bbox", "intersects", "intersects_get"] {
        assert_eq!(once(&got[q]), brute_region, "{q}");
    }
    let interval =
        DatetimeInterval::parse("2018-01-01T00:00:00Z/2020-12-31T23:59:59Z", "d").unwrap();
    let (lo, hi) = (
        interval.start.map(|t| t.timestamp_micros()),
        interval.end.map(|t| t.timestamp_micros()),
    );
    let brute_time: BTreeSet<String> = every
        .iter()
        .filter(|i| {
            temporal_match(
                micros(i, "datetime"),
                micros(i, "start_datetime"),
                micros(i, "end_datetime"),
                lo,
                hi,
            )
        })
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!brute_time.is_empty());
    assert_eq!(once(&got["datetime"]), brute_time);
    assert_eq!(
        id_set(&cli_search(
            &catalog,
            &["--datetime", "2018-01-01T00:00:00Z/2020-12-31T23:59:59Z"]
        )),
        brute_time
    );
    assert_eq!(
        once(&got["open_start"]),
        id_set(&cli_search(
            &catalog,
            &["--datetime", "../2010-01-01T00:00:00Z"]
        ))
    );

    // CQL2 (text over GET, JSON over POST), ids, sortby, fields.
    let f = "percent_valid_pixels > 50 AND platform IN ('LC08','S2A')";
    assert_eq!(
        once(&got["filter"]),
        id_set(&cli_search(&catalog, &["--filter", f]))
    );
    let brute_low: BTreeSet<String> = every
        .iter()
        .filter(|i| {
            i["properties"]["percent_valid_pixels"]
                .as_f64()
                .is_some_and(|v| v < 20.0)
        })
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(once(&got["filter_json"]), brute_low);
    let first: BTreeSet<String> = strings(&got["all"]).into_iter().take(3).collect();
    assert_eq!(once(&got["ids"]), first);
    let sorted: Vec<(String, Option<String>)> = got["sortby"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().map(str::to_string),
            )
        })
        .collect();
    let cli_sorted: Vec<(String, Option<String>)> = cli_search(
        &catalog,
        &["--sortby", "-properties.datetime", "--max-items", "40"],
    )
    .iter()
    .map(|i| {
        (
            i["id"].as_str().unwrap().to_string(),
            i["properties"]["datetime"].as_str().map(str::to_string),
        )
    })
    .collect();
    assert_eq!(sorted, cli_sorted, "sortby pages in the CLI's order");
    assert_eq!(strings(&got["fields_props"]), ["platform"]);
    assert!(!strings(&got["fields"]).contains(&"assets".to_string()));

    // Items as stored (the same rehydration as `search`), server links aside.
    let one = every.iter().find(|i| i["collection"].is_string()).unwrap();
    let id = one["id"].as_str().unwrap();
    let path = format!(
        "/collections/itslive-granules/items/{}",
        url::form_urlencoded::byte_serialize(id.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    );
    let r = server.get(&path);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/geo+json"));
    let mut served = r.json();
    let strip = |v: &mut Json| {
        let links = v["links"].as_array_mut().unwrap();
        links.retain(|l| {
            !matches!(
                l["rel"].as_str(),
                Some("self" | "root" | "parent" | "collection")
            )
        });
    };
    let mut stored = one.clone();
    strip(&mut served);
    strip(&mut stored);
    assert_eq!(served, stored);
}

#[test]
fn a_handler_panic_answers_500_and_the_server_keeps_serving_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let catalog = rt.block_on(add(dir.path(), 26, 40, 0.0));
    let mut server = ServeProcess::start(
        &catalog,
        &["--reload-secs", "0"],
        &[("EARTHCATALOG_FAULT", "server.search".to_string())],
    );
    for _ in 0..3 {
        let r = server.get("/search");
        assert_eq!(r.status, 500);
        let body = r.json();
        assert_eq!(body["code"], "InternalServerError");
        assert!(
            body["description"]
                .as_str()
                .unwrap()
                .contains("injected panic")
        );
        // Still serving.
        assert_eq!(server.get("/collections").status, 200);
        assert_eq!(server.get("/_health").json()["status"], "ok");
    }
    // gzip when accepted.
    let r = http_request(
        &server.base,
        "GET",
        "/api",
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    // CORS by default.
    let r = http_request(
        &server.base,
        "GET",
        "/",
        &[("Origin", "http://example.org")],
        b"",
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let status = server.terminate();
    assert!(status.success(), "{status:?}\n{}", server.logs());
    assert!(server.logs().contains("stopped"), "{}", server.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_are_found_through_the_id_locator_reading_only_their_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = add(dir.path(), 27, 150, 0.05).await;
    let wh = earthcatalog::query::Warehouse::open(&catalog, None)
        .await
        .unwrap();
    let locator = Location::parse(&wh.locator_path().unwrap()).unwrap();
    let stats = earthcatalog::query::build_locator(wh.table().unwrap(), &locator)
        .await
        .unwrap();
    assert!(stats.rows >= 140, "{stats:?}");
    let api = Api::open(options(&catalog)).await.unwrap();
    let view = api.snapshot();
    let view = view.locator.as_ref().expect("the locator is used");
    assert!(view.extra.is_empty());

    // Every item with a collection, served as `search` returns it (server links aside).
    let strip = |mut v: Json| {
        if let Some(links) = v["links"].as_array_mut() {
            links.retain(|l| {
                !matches!(
                    l["rel"].as_str(),
                    Some("self" | "root" | "parent" | "collection")
                )
            });
        }
        v
    };
    let every = cli_search(&catalog, &[]);
    let with_collection: Vec<&Json> = every
        .iter()
        .filter(|i| i["collection"].is_string())
        .collect();
    assert!(with_collection.len() > 100);
    let path = |id: &str| {
        format!(
            "/collections/itslive-granules/items/{}",
            url::form_urlencoded::byte_serialize(id.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        )
    };
    for item in &with_collection {
        let id = item["id"].as_str().unwrap();
        let (status, got, _) = call(&api, "GET", &path(id), "").await;
        assert_eq!(status, 200, "{id}: {got}");
        assert_eq!(strip(got), strip((*item).clone()), "{id}");
    }
    let (status, _, _) = call(&api, "GET", &path("no-such-item"), "").await;
    assert_eq!(status, 404);

    // Ids committed after the locator was built are found too (read into memory on load).
    add(dir.path(), 28, 60, 0.0).await;
    assert!(api.reload_if_changed().await.unwrap());
    let snap = api.snapshot();
    assert!(!snap.locator.as_ref().expect("still used").extra.is_empty());
    let newer = cli_search(&catalog, &[]);
    let added: Vec<&Json> = newer
        .iter()
        .filter(|i| i["collection"].is_string() && !every.iter().any(|o| o["id"] == i["id"]))
        .collect();
    assert!(!added.is_empty());
    for item in &added {
        let id = item["id"].as_str().unwrap();
        let (status, got, _) = call(&api, "GET", &path(id), "").await;
        assert_eq!(status, 200, "{id}: {got}");
        assert_eq!(strip(got), strip((*item).clone()));
    }

    // Only the id's buckets are read: a file of another bucket going missing does not matter
    // (a full scan would hit it and answer 410).
    let target = with_collection[0];
    let id = target["id"].as_str().unwrap();
    let buckets = snap
        .locator
        .as_ref()
        .unwrap()
        .locator
        .buckets(id)
        .await
        .unwrap();
    assert!(!buckets.is_empty());
    let cells: BTreeSet<String> = snap
        .warehouse
        .cached_files()
        .unwrap()
        .entries()
        .iter()
        .map(|(e, _)| e.file.clone())
        .filter(|f| !buckets.contains(&(f.cell.clone(), f.year)))
        .map(|f| f.path)
        .collect();
    let victim = cells
        .iter()
        .next()
        .unwrap()
        .trim_start_matches("file://")
        .to_string();
    std::fs::remove_file(&victim).unwrap();
    let (status, _, _) = call(&api, "GET", &path(id), "").await;
    assert_eq!(status, 200);
    // An unknown id reads nothing at all.
    let (status, _, _) = call(&api, "GET", &path("no-such-item"), "").await;
    assert_eq!(status, 404);
    // Without the locator a lookup scans every file (and trips over the missing one).
    std::fs::remove_file(locator.url().trim_start_matches("file://")).unwrap();
    let plain = Api::open(options(&catalog)).await.unwrap();
    assert!(plain.snapshot().locator.is_none());
    let (status, err, _) = call(&plain, "GET", &path("no-such-item"), "").await;
    assert_eq!(status, 410, "{err}");
}

#[tokio::test]
async fn a_locator_built_or_rewritten_while_serving_is_picked_up_and_never_fails_a_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = add(dir.path(), 31, 80, 0.0).await;
    let api = Api::open(options(&catalog)).await.unwrap();
    assert!(api.snapshot().locator.is_none());
    assert!(!api.reload_if_changed().await.unwrap());

    // `index locate` after the server started: the next reload uses it (the catalog is
    // unchanged).
    let wh = earthcatalog::query::Warehouse::open(&catalog, None)
        .await
        .unwrap();
    let locator = Location::parse(&wh.locator_path().unwrap()).unwrap();
    earthcatalog::query::build_locator(wh.table().unwrap(), &locator)
        .await
        .unwrap();
    assert!(api.reload_if_changed().await.unwrap(), "locator noticed");
    assert!(api.snapshot().locator.is_some());
    assert!(!api.reload_if_changed().await.unwrap());

    // The locator file replaced under a loaded snapshot: lookups fall back to a scan (200),
    // never a 500, and the reload drops the unreadable locator.
    let items = cli_search(&catalog, &[]);
    let item = items.iter().find(|i| i["collection"].is_string()).unwrap();
    let id = item["id"].as_str().unwrap();
    let path = format!(
        "/collections/{}/items/{}",
        item["collection"].as_str().unwrap(),
        url::form_urlencoded::byte_serialize(id.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    );
    let file = locator.url().trim_start_matches("file://").to_string();
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    std::fs::write(&file, vec![0x5a_u8; len + 7]).unwrap();
    let (status, got, _) = call(&api, "GET", &path, "").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["id"], item["id"]);
    assert!(api.reload_if_changed().await.unwrap());
    assert!(api.snapshot().locator.is_none());
}

/// Items stored without a `collection` are served under the default collection: it is listed,
/// its items endpoint and `collections=` find exactly them, each carries it with a `self` link
/// that resolves; every page after the first links back (`prev`) to the page before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_without_a_collection_are_served_under_the_default_one_and_pages_link_back() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = add(dir.path(), 41, 200, 0.0).await;
    let api = Api::open(options(&catalog)).await.unwrap();
    // A second server over the same catalog once it has an id locator.
    let wh = earthcatalog::query::Warehouse::open(&catalog, None)
        .await
        .unwrap();
    let locator = Location::parse(&wh.locator_path().unwrap()).unwrap();
    earthcatalog::query::build_locator(wh.table().unwrap(), &locator)
        .await
        .unwrap();
    let located = Api::open(options(&catalog)).await.unwrap();
    assert!(located.snapshot().locator.is_some());
    let default = earthcatalog::server::DEFAULT_COLLECTION;
    let stored: Vec<Json> = cli_search(&catalog, &[]);
    let without: BTreeSet<String> = stored
        .iter()
        .filter(|i| i.get("collection").is_none_or(Json::is_null))
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !without.is_empty(),
        "the synthetic items all have a collection"
    );

    let (_, list, _) = call(&api, "GET", "/collections", "").await;
    let listed: Vec<&str> = list["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&default), "{listed:?}");

    let served: Vec<String> =
        page_all(&api, &format!("/collections/{default}/items?limit=7")).await;
    assert_eq!(served.iter().cloned().collect::<BTreeSet<_>>(), without);
    let (_, body, _) = call(
        &api,
        "POST",
        "/search",
        &json!({"collections": [default], "limit": 1000}).to_string(),
    )
    .await;
    assert_eq!(ids(&body).into_iter().collect::<BTreeSet<_>>(), without);
    for item in body["features"].as_array().unwrap() {
        assert_eq!(item["collection"], default);
        let self_href = item["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "self")
            .and_then(|l| l["href"].as_str())
            .unwrap_or_else(|| panic!("no self link: {item}"));
        let path = self_href.strip_prefix("http://test.local").unwrap();
        let (status, got, _) = call(&api, "GET", path, "").await;
        assert_eq!((status, &got["id"]), (200, &item["id"]), "{path}");
        // The same through the id locator (read_item, not a search).
        let (status, got, _) = call(&located, "GET", path, "").await;
        assert_eq!((status, &got["id"]), (200, &item["id"]), "located {path}");
        assert_eq!(got["collection"], default, "located {path}");
    }

    // prev: page 3 links back to page 2, page 2 to page 1, page 1 to nothing.
    let (_, p1, _) = call(&api, "GET", "/search?limit=5", "").await;
    assert!(
        p1["links"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["rel"] != "prev")
    );
    let p2_uri = next_uri(&p1).unwrap();
    let (_, p2, _) = call(&api, "GET", &p2_uri, "").await;
    let (_, p3, _) = call(&api, "GET", &next_uri(&p2).unwrap(), "").await;
    let prev_of = |page: &Json| -> String {
        let href = page["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "prev")
            .and_then(|l| l["href"].as_str())
            .unwrap_or_else(|| panic!("no prev link: {}", page["links"]))
            .to_string();
        href.strip_prefix("http://test.local").unwrap().to_string()
    };
    let (_, back2, _) = call(&api, "GET", &prev_of(&p3), "").await;
    assert_eq!(ids(&back2), ids(&p2));
    let (_, back1, _) = call(&api, "GET", &prev_of(&p2), "").await;
    assert_eq!(ids(&back1), ids(&p1));
}

/// A browser (`Accept: text/html`) gets an HTML landing page with the coverage map; JSON
/// clients get the STAC landing page as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_a_landing_page_with_the_coverage_map() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = add(dir.path(), 43, 120, 0.0).await;
    let api = Api::open(options(&catalog)).await.unwrap();
    let get = |accept: &'static str| {
        http::Request::builder()
            .uri("/")
            .header("host", "test.local")
            .header("accept", accept)
            .body(Bytes::new())
            .unwrap()
    };
    let r = api
        .handle(get(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8_lossy(r.body()).into_owned();
    assert!(
        html.contains("<svg") && html.contains("rows</title></path>"),
        "{html}"
    );
    assert!(html.contains("/collections/itslive-granules"), "{html}");
    for accept in [
        "application/json",
        "*/*",
        "application/json, text/plain, */*",
    ] {
        let r = api.handle(get(accept)).await;
        let landing: Json = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(landing["type"], "Catalog", "{accept}");
    }
}
