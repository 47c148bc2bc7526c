//! The command line's output under review: `ingest --json`, `info` and `stats` on the bundled
//! example, as insta snapshots (`tests/snapshots/`). Values that change from run to run (run
//! ids, paths, timings, snapshot ids, sizes) are redacted; everything else — counts, reasons,
//! the layout of the text — must match, so an output change is a reviewed diff, not an accident.
//! Update with `INSTA_UPDATE=always cargo test --test snapshots` and review the `.snap` diff.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use common::*;

fn example() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data")
}

/// Filters for text output: the temp dir, snapshot ids, times and byte counts.
fn text_filters(root: &str) -> Vec<(String, String)> {
    vec![
        (regex_escape(root), "[ROOT]".into()),
        (r"\b\d{15,20}\b".into(), "[ID]".into()),
        (
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)".into(),
            "[TIME]".into(),
        ),
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".into(),
            "[UUID]".into(),
        ),
        (r"(bytes?:?[ \t]+)[\d,]+".into(), "$1[N]".into()),
        (
            r"[\d,.]+ (B|KB|MB|GB|KiB|MiB|GiB)\b".into(),
            "[SIZE]".into(),
        ),
    ]
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[test]
fn ingest_info_and_stats_of_the_bundled_example() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_string_lossy().into_owned();
    let (wh, cat) = (format!("{root}/warehouse"), format!("{root}/catalog.db"));
    let ex = example();
    let out = run(cli().args([
        "ingest",
        "--json",
        "--no-lock",
        "--inventory",
        ex.join("inventory.csv").to_str().unwrap(),
        "--items-root",
        ex.join("items").to_str().unwrap(),
        "--warehouse",
        &wh,
        "--catalog",
        &cat,
    ]));
    let summary = json_summary(&out, 0);
    insta::assert_json_snapshot!("ingest_json", summary, {
        ".run_id" => "[run_id]",
        ".elapsed_secs" => "[secs]",
        ".items_per_sec" => "[rate]",
        ".bytes" => "[bytes]",
        ".snapshot_id" => "[snapshot]",
        ".summary_report" => "[path]",
        ".failures_report" => "[path]",
        ".hash_index_path" => "[path]",
        ".index_reconciled.total" => "[n]",
        // Discovery order follows the concurrent fetches.
        ".schema_columns_added" => insta::sorted_redaction(),
    });

    let info = run(cli().args(["info", "--catalog", &cat]));
    assert!(info.status.success());
    let filters = text_filters(&root);
    let filters: Vec<(&str, &str)> = filters
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    insta::with_settings!({filters => filters}, {
        insta::assert_snapshot!("info_text", String::from_utf8_lossy(&info.stdout));
    });

    let stats = run(cli().args(["stats", "--json", "--catalog", &cat]));
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    insta::assert_json_snapshot!("stats_json", stats, {"[].bytes" => "[bytes]"});
}
