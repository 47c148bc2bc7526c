//! The one retry layer, against a flaky S3-compatible endpoint on 127.0.0.1: 503s are retried by
//! the store's client (configured by `EARTHCATALOG_S3_*`) until the item arrives; with retries
//! disabled the same items fail; 404 and 403 are never retried and are reported by kind.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::*;

/// How many 503s each existing key answers before its body.
const FLAKY: usize = 2;

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
    let (port, counts) = s3_stub(objects.clone(), FLAKY);
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
    let (port, counts) = s3_stub(objects.clone(), FLAKY);
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
