//! The library pieces the server stands on: a warehouse pinned to an older snapshot reads
//! exactly that snapshot's files, and the in-memory file list prunes like the manifests do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use common::ingest_synthetic;
use earthcatalog::Error;
use earthcatalog::query::{Pruner, SearchRequest, Warehouse, parse_bbox, parse_point};
use earthcatalog::synth::SynthOptions;
use futures::TryStreamExt;

/// Two ingest runs (two snapshots) of two synthetic datasets into one catalog.
async fn build(dir: &std::path::Path) -> (String, String) {
    let mut catalog = String::new();
    for (run, seed) in [(0, 5u64), (1, 6)] {
        catalog = ingest_synthetic(dir, &format!("data{run}"), &SynthOptions::new(seed, 150)).await;
    }
    (catalog, dir.join("warehouse").to_str().unwrap().to_string())
}

async fn ids(wh: &Warehouse, req: &SearchRequest) -> BTreeSet<String> {
    let items: Vec<serde_json::Value> = wh.search(req).await.unwrap().try_collect().await.unwrap();
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_snapshot_reads_its_own_files_and_the_cache_prunes_like_the_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, _) = build(dir.path()).await;
    let wh = Warehouse::open(&catalog, None).await.unwrap();
    let md = wh.table().unwrap().metadata().clone();
    let mut snapshots: Vec<_> = md.snapshots().cloned().collect();
    snapshots.sort_by_key(|s| s.sequence_number());
    assert!(snapshots.len() >= 2, "{} snapshots", snapshots.len());
    let first = snapshots[0].snapshot_id();
    assert_eq!(wh.snapshot_id(), md.current_snapshot_id());

    // Pinned: only the files the first commit added, and only their items.
    let pinned = wh.at_snapshot(first).unwrap();
    assert_eq!(pinned.snapshot_id(), Some(first));
    let all = wh.scan(&Pruner::default()).await.unwrap().files;
    let old = pinned.scan(&Pruner::default()).await.unwrap().files;
    assert!(!old.is_empty() && old.len() < all.len());
    assert!(old.iter().all(|f| f.snapshot_id == first));
    assert_eq!(
        old.len(),
        all.iter().filter(|f| f.snapshot_id == first).count()
    );
    let now = ids(&wh, &SearchRequest::new()).await;
    let then = ids(&pinned, &SearchRequest::new()).await;
    assert!(!then.is_empty() && then.len() < now.len() && then.is_subset(&now));
    // The pinned handle keeps reading the old snapshot after caching its file list too.
    let mut pinned_cached = pinned.clone();
    pinned_cached.cache_files().await.unwrap();
    assert_eq!(ids(&pinned_cached, &SearchRequest::new()).await, then);

    // An unknown snapshot is NotFound, naming it.
    let err = wh.at_snapshot(4242).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("4242"), "{err}");

    // The cached list prunes exactly like a manifest scan.
    let mut cached = wh.clone();
    cached.cache_files().await.unwrap();
    assert_eq!(cached.cached_files().unwrap().len(), all.len());
    let t = |y| Some(Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0).unwrap());
    let point = parse_point("-147.0,61.0", "p").unwrap();
    let region = parse_bbox("-150,55,-120,70", "b").unwrap();
    let mut pruners = vec![Pruner::default(), Pruner::new(None, t(2018), t(2020))];
    for g in [&point, &region] {
        let cells = wh.cells_for_geometry(g).await.unwrap();
        pruners.push(Pruner::new(Some(cells.clone()), None, None));
        pruners.push(Pruner::new(Some(cells.clone()), t(2019), None));
        pruners.push(Pruner::new(Some(cells), t(2016), t(2017)));
    }
    pruners.push(Pruner::new(Some(BTreeSet::new()), None, None));
    for p in &pruners {
        let a = wh.scan(p).await.unwrap().files;
        let b = cached.scan(p).await.unwrap().files;
        assert_eq!(a, b, "{p:?}");
    }
    // And searches agree.
    let req = SearchRequest::new().with_intersects(region).with_datetime(
        earthcatalog::query::DatetimeInterval {
            start: t(2018),
            end: t(2021),
        },
    );
    assert_eq!(ids(&wh, &req).await, ids(&cached, &req).await);
}
