//! The newer warehouse layout `grid=h3/level=<res>/tile=<cell>/year=<yyyy>/`: ingest, compact,
//! repair, files and search on a table that chose it, and a table keeps its layout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use earthcatalog::query::{SearchRequest, Warehouse};
use futures::TryStreamExt;

fn v2_files(ds: &Dataset) -> Vec<String> {
    walk(&ds.dir.path().join("warehouse"))
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".parquet") && !p.contains("/earthcatalog/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_level_tile_table_is_ingested_compacted_repaired_and_searched() {
    let ds = Dataset::synth(150, 91).await;
    let out = run(ds.ingest_cmd().args([
        "--no-lock",
        "--resolution",
        "1",
        "--layout",
        "grid/level/tile",
        "--chunk-items",
        "50",
    ]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second run of the same items (every key again): duplicates for compaction.
    let out = run(ds
        .ingest_cmd()
        .args(["--no-lock", "--mode", "all", "--chunk-items", "50"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = v2_files(&ds);
    assert!(!files.is_empty());
    for f in &files {
        assert!(
            f.contains("/grid=h3/level=1/tile=") && f.contains("/year="),
            "{f} is not in the grid/level/tile layout"
        );
        assert!(!f.contains("grid_partition="), "{f}");
    }
    let catalog = ds.path("catalog.db");
    let wh = Warehouse::open(&catalog, None).await.unwrap();
    assert_eq!(
        wh.table().unwrap().metadata().properties()["earthcatalog.layout"],
        "grid/level/tile"
    );
    // Search finds every item once; files prunes to tile paths.
    let ids: BTreeSet<String> = wh
        .search(&SearchRequest::new())
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ds.item_ids());
    let out = run(cli().args(["files", "--catalog", &catalog, "--point", "-45.5,70.5"]));
    assert!(out.status.success());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        assert!(line.contains("/grid=h3/level=1/tile="), "{line}");
    }

    // Asking an existing table for the other layout is a configuration error.
    let out = run(ds
        .ingest_cmd()
        .args(["--no-lock", "--layout", "grid_partition"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("layout"));

    // Compaction writes its outputs in the table's layout and removes the duplicates.
    let warehouse = ds.path("warehouse");
    let m = json_summary(
        &run(cli().args([
            "compact",
            "--json",
            "--no-lock",
            "--warehouse",
            &warehouse,
            "--catalog",
            &catalog,
        ])),
        0,
    );
    assert!(m["duplicates_removed"].as_u64().unwrap() > 0, "{m}");
    let after = v2_files(&ds);
    assert_eq!(after.len() as u64, m["files_after"].as_u64().unwrap());
    assert!(after.iter().all(|f| f.contains("/grid=h3/level=1/tile=")));
    assert!(after.iter().any(|f| f.contains("/compacted_")));
    let wh = Warehouse::open(&catalog, None).await.unwrap();
    let n = wh
        .search(&SearchRequest::new())
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .len();
    assert_eq!(n, ds.item_ids().len());

    // Repair sees the layout's files: an unregistered copy is registered, a lost one dropped.
    let first = after[0].clone();
    let copy = first
        .replace(".parquet", "_copy.parquet")
        .replace("compacted_", "part_000099_");
    std::fs::copy(&first, &copy).unwrap();
    let last = after.last().unwrap().clone();
    std::fs::remove_file(&last).unwrap();
    let r = json_summary(
        &run(cli().args([
            "repair",
            "--json",
            "--no-lock",
            "--warehouse",
            &warehouse,
            "--catalog",
            &catalog,
        ])),
        0,
    );
    let added: Vec<String> = serde_json::from_value(r["added"].clone()).unwrap();
    let removed: Vec<String> = serde_json::from_value(r["removed"].clone()).unwrap();
    assert_eq!(added.len(), 1, "{r}");
    assert!(added[0].ends_with("_copy.parquet"));
    assert_eq!(removed.len(), 1, "{r}");
    assert!(removed[0].ends_with(last.rsplit('/').next().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_layout_is_grid_partition_and_recorded() {
    let ds = Dataset::synth(30, 92).await;
    let out = run(ds.ingest_cmd().args(["--no-lock", "--resolution", "2"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(v2_files(&ds).iter().all(|f| f.contains("/grid_partition=")));
    let wh = Warehouse::open(&ds.path("catalog.db"), None).await.unwrap();
    assert_eq!(
        wh.table().unwrap().metadata().properties()["earthcatalog.layout"],
        "grid_partition"
    );
}
