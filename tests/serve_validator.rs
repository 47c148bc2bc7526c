//! Clients of the STAC API against `earthcatalog serve` on 127.0.0.1: STAC Browser in headless
//! Chromium (`tests/stac-browser/run.sh`), and `stac-api-validator` (PyPI) for every
//! conformance class the server declares. The validator runs through
//! `tests/common/stac_api_validator_offline.py`, which maps the schema URLs it would download
//! to local copies (pystac's STAC core schemas) and validates every object against the core
//! schemas only: the items' extension schemas (projection, sat, ...) cannot be fetched here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use common::*;
use earthcatalog::synth::SynthOptions;

/// A warehouse of clean synthetic items (no edge cases: the validator reads the first item's
/// geometry, bbox and datetime).
async fn warehouse(dir: &std::path::Path) -> String {
    ingest_synthetic(
        dir,
        "data",
        &SynthOptions::new(3, 300).with_special_fraction(0.0),
    )
    .await
}

/// STAC Browser 4.0.1 (from the npm registry, built once into the target directory) in
/// headless Chromium against `serve` on the bundled example, driven by
/// `tests/stac-browser/check.mjs`: the landing page and the collection open, a search without
/// criteria and one with a CQL2 filter list their items, Next and Previous page both ways, an
/// item page opens, every item has a `self` link, the queryables need no other host, and no
/// console error or failed request to the server. Skipped (and said so) only where node is
/// missing.
#[test]
fn stac_browser_lists_searches_and_pages_both_ways() {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: node is not installed, so STAC Browser cannot be built");
        return;
    }
    let report = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stac-browser/run.sh");
    let out = run_within(
        std::process::Command::new("bash")
            .arg(script)
            .arg(report.path())
            .env("EARTHCATALOG", env!("CARGO_BIN_EXE_earthcatalog")),
        std::time::Duration::from_secs(900),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "STAC Browser checks failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let checks = r["checks"].as_object().unwrap();
    for name in [
        "search",
        "next_page",
        "previous_page",
        "search_filter",
        "filter_previous_page",
        "search_items_have_self_link",
    ] {
        assert_eq!(checks[name]["pass"], true, "{name}: {}", checks[name]);
    }
    assert!(report.path().join("search-results.png").exists());
}

#[test]
fn stac_api_validator_passes_every_declared_conformance_class() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let catalog = rt.block_on(warehouse(dir.path()));
    let server = ServeProcess::start(&catalog, &["--reload-secs", "0"], &[]);

    // What the landing page declares is what we validate.
    let landing = server.get("/").json();
    let declared: Vec<&str> = landing["conformsTo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let classes = [
        ("https://api.stacspec.org/v1.0.0/core", "core"),
        ("https://api.stacspec.org/v1.0.0/collections", "collections"),
        (
            "https://api.stacspec.org/v1.0.0/ogcapi-features",
            "features",
        ),
        ("https://api.stacspec.org/v1.0.0/item-search", "item-search"),
        (
            "https://api.stacspec.org/v1.0.0/item-search#filter",
            "filter",
        ),
        (
            "https://api.stacspec.org/v1.0.0/item-search#sort",
            "item-search#sort",
        ),
        (
            "https://api.stacspec.org/v1.0.0/item-search#fields",
            "item-search#fields",
        ),
    ];
    let mut args: Vec<String> = vec![
        manifest_path("tests/common/stac_api_validator_offline.py"),
        "--root-url".into(),
        format!("{}/", server.base),
        "--collection".into(),
        "itslive-granules".into(),
        "--geometry".into(),
        r#"{"type":"Polygon","coordinates":[[[-170,50],[-100,50],[-100,80],[-170,80],[-170,50]]]}"#
            .into(),
        "--fields-nested-property".into(),
        "properties.platform".into(),
        "--log-level".into(),
        "WARN".into(),
    ];
    for (uri, class) in classes {
        assert!(declared.contains(&uri), "{uri} is not declared");
        args.extend(["--conformance".into(), class.to_string()]);
    }
    let out = std::process::Command::new("python3")
        .args(&args)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Errors: none"),
        "stac-api-validator failed:\n{text}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    // The validator's checks reached the server (not a validator that never connected).
    let log = server.logs();
    assert!(
        !log.contains("panicked"),
        "a handler panicked during validation:\n{log}"
    );
}

fn manifest_path(rel: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .to_string_lossy()
        .into_owned()
}
