//! `stac-api-validator` (PyPI) against `earthcatalog serve` on 127.0.0.1, for every
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
