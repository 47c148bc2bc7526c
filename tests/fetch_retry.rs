//! The one retry layer, against a flaky S3-compatible endpoint on 127.0.0.1: 503s are retried by
//! the store's client (configured by `EARTHCATALOG_S3_*`) until the item arrives; with retries
//! disabled the same items fail; 404 and 403 are never retried and are reported by kind.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;

/// How many 503s each existing key answers before its body.
const FLAKY: usize = 2;

/// A tiny HTTP server: GET /<bucket>/<key> → 503 for the first `fail` requests of each key, then
/// the body; keys below `denied/` → 403; unknown keys → 404. Counts requests per path.
fn flaky_server(
    objects: HashMap<String, Vec<u8>>,
    fail: usize,
) -> (u16, Arc<Mutex<HashMap<String, usize>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen = counts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let objects = objects.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let n = {
                        let mut c = seen.lock().unwrap();
                        let e = c.entry(path.clone()).or_default();
                        *e += 1;
                        *e
                    };
                    let (status, body): (&str, Vec<u8>) = match objects.get(&path) {
                        _ if path.contains("/denied/") => (
                            "403 Forbidden",
                            b"<Error><Code>AccessDenied</Code></Error>".to_vec(),
                        ),
                        Some(_) if n <= fail => (
                            "503 Service Unavailable",
                            b"<Error><Code>SlowDown</Code></Error>".to_vec(),
                        ),
                        Some(b) => ("200 OK", b.clone()),
                        None => (
                            "404 Not Found",
                            b"<Error><Code>NoSuchKey</Code></Error>".to_vec(),
                        ),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: \"e\"\r\nLast-Modified: Wed, 25 Nov 2026 08:00:00 GMT\r\n\r\n",
                        body.len()
                    );
                    if stream
                        .write_all(head.as_bytes())
                        .and_then(|_| stream.write_all(&body))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, counts)
}

/// The synthetic items as objects of bucket `flaky`, and an inventory of them plus one missing
/// and one denied key.
fn flaky_inventory(ds: &Dataset) -> (HashMap<String, Vec<u8>>, String) {
    let mut objects = HashMap::new();
    let mut inventory = String::from("bucket,key\n");
    for f in walk(&ds.dir.path().join("items")) {
        let key = f
            .strip_prefix(ds.dir.path().join("items"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        objects.insert(format!("/flaky/{key}"), std::fs::read(f).unwrap());
        inventory.push_str(&format!("flaky,{key}\n"));
    }
    inventory.push_str("flaky,missing/none.stac.json\n");
    inventory.push_str("flaky,denied/secret.stac.json\n");
    let inv = ds.path("flaky.csv");
    std::fs::write(&inv, inventory).unwrap();
    (objects, inv)
}

/// `earthcatalog ingest` of the flaky inventory into a fresh local warehouse named `name`, with
/// no AWS settings of the caller's environment and a fast backoff.
fn ingest(ds: &Dataset, inv: &str, port: u16, name: &str) -> Command {
    let mut c = cli();
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("EARTHCATALOG_S3_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", ds.path("home"))
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("EARTHCATALOG_S3_BACKOFF_MS", "10")
        .args(["--anonymous", "ingest", "--json", "--no-lock"])
        .args(["--resolution", "1", "--inventory", inv])
        .args([
            "--warehouse",
            &ds.path(&format!("{name}/wh")),
            "--catalog",
            &ds.path(&format!("{name}/c.db")),
        ]);
    c
}

fn assert_not_retried(counts: &HashMap<String, usize>) {
    assert_eq!(
        counts["/flaky/missing/none.stac.json"], 1,
        "404 is not retried"
    );
    assert_eq!(
        counts["/flaky/denied/secret.stac.json"], 1,
        "403 is not retried"
    );
}

#[test]
fn throttled_items_are_retried_by_the_store_and_fail_without_retries() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(5, 71));
    let (objects, inv) = flaky_inventory(&ds);

    // Retries on (3 > FLAKY): every throttled item arrives.
    let (port, counts) = flaky_server(objects.clone(), FLAKY);
    let out = run(ingest(&ds, &inv, port, "retried").env("EARTHCATALOG_S3_MAX_RETRIES", "3"));
    let m = json_summary(&out, 3);
    assert_eq!(m["items"], 5, "every throttled item arrives after retries");
    assert_eq!(m["failed"], 2);
    assert_eq!(m["failures_by_reason"]["fetch: not found"], 1);
    assert_eq!(m["failures_by_reason"]["fetch: access denied"], 1);
    let counts = counts.lock().unwrap().clone();
    assert_not_retried(&counts);
    for (path, n) in counts.iter().filter(|(p, _)| objects.contains_key(*p)) {
        assert_eq!(*n, FLAKY + 1, "{path}: {FLAKY} 503s, then the body");
    }

    // The same run with retries disabled through the configuration: the throttled items fail.
    let (port, counts) = flaky_server(objects.clone(), FLAKY);
    let out = run(ingest(&ds, &inv, port, "no-retries").env("EARTHCATALOG_S3_MAX_RETRIES", "0"));
    let m = json_summary(&out, 3);
    assert_eq!(m["items"], 0, "{m}");
    assert_eq!(m["failures_by_reason"]["fetch: failed"], 5, "{m}");
    assert_eq!(m["failures_by_reason"]["fetch: not found"], 1);
    assert_eq!(m["failures_by_reason"]["fetch: access denied"], 1);
    let counts = counts.lock().unwrap().clone();
    assert_not_retried(&counts);
    for (path, n) in counts.iter().filter(|(p, _)| objects.contains_key(*p)) {
        assert_eq!(*n, 1, "{path}: one try, no retry");
    }
}

#[test]
fn a_bad_retry_setting_is_a_usage_error_naming_it() {
    let out = run(cli().env("EARTHCATALOG_S3_MAX_RETRIES", "many").args([
        "info",
        "--catalog",
        "/nonexistent/catalog.db",
    ]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("EARTHCATALOG_S3_MAX_RETRIES"), "{err}");
}
