//! Against a real S3 API server (moto on 127.0.0.1): inventory and items on S3, warehouse on
//! S3 and local, catalog on S3 under the lock, a held lock, and two racing writers.
//!
//! One test function: the S3 endpoint is configured through the process environment, which is
//! set once before any store is built.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::io::Write;

use common::*;
use earthcatalog::catalog::Catalog;
use earthcatalog::store::Location;
use earthcatalog::synth::{Synth, SynthOptions};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

async fn count_objects(url: &str, suffix: &str) -> usize {
    let loc = Location::parse(url).unwrap();
    let all: Vec<_> = loc
        .store()
        .list(Some(loc.prefix()))
        .try_collect()
        .await
        .unwrap();
    all.iter()
        .filter(|m| m.location.as_ref().ends_with(suffix))
        .count()
}

async fn snapshots(catalog: &str, warehouse: &str) -> usize {
    let cat = Catalog::open(catalog, warehouse).await.unwrap();
    cat.load_table()
        .await
        .unwrap()
        .map_or(0, |t| t.metadata().snapshots().count())
}

#[test]
fn s3_end_to_end_with_lock_and_racing_writers() {
    let moto = Moto::start();
    for (k, v) in moto.env() {
        // SAFETY: single test in this binary; set before any thread reads the environment.
        unsafe { std::env::set_var(k, v) };
    }
    moto.create_bucket("its-live-data");
    moto.create_bucket("warehouse-bucket");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let env = moto.env();
    let with_env = |mut c: std::process::Command| {
        for (k, v) in &env {
            c.env(k, v);
        }
        c
    };

    // Items and inventory on S3.
    let out = run(with_env(cli()).args([
        "generate",
        "--out",
        "s3://its-live-data/synth",
        "--count",
        "120",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let wh = "s3://warehouse-bucket/wh";
    let cat = "s3://warehouse-bucket/catalog/catalog.db";
    let ingest = |inventory: &str, items_root: Option<&str>| {
        let mut c = with_env(cli());
        c.args([
            "ingest",
            "--json",
            "--resolution",
            "1",
            "--inventory",
            inventory,
        ])
        .args(["--warehouse", wh, "--catalog", cat]);
        if let Some(r) = items_root {
            c.args(["--items-root", r]);
        }
        c
    };
    let out = run(&mut ingest(
        "s3://its-live-data/synth/inventory.csv",
        Some("s3://its-live-data/synth/items"),
    ));
    let m = json_summary(&out, 0);
    assert_eq!(m["items"], 120);
    assert_eq!(m["failed"], 0);
    rt.block_on(async {
        assert_eq!(
            count_objects(wh, ".parquet").await as u64,
            m["files"].as_u64().unwrap()
        );
        assert_eq!(
            count_objects("s3://warehouse-bucket/catalog", "catalog.db").await,
            1
        );
        assert_eq!(
            count_objects("s3://warehouse-bucket/catalog", ".lock").await,
            0,
            "lock released"
        );
        assert_eq!(snapshots(cat, wh).await, 1);
        assert_eq!(
            count_objects("s3://warehouse-bucket", "wh_id_hashes.parquet").await,
            1
        );
    });

    // An inventory whose rows point straight at s3://<bucket>/<key> (no items root).
    let dir = tempfile::tempdir().unwrap();
    let inv_path = dir.path().join("direct.csv");
    let mut f = std::fs::File::create(&inv_path).unwrap();
    writeln!(f, "bucket,key").unwrap();
    for item in Synth::new(SynthOptions::new(42, 120)).take(30) {
        writeln!(f, "its-live-data,synth/items/{}", item.key).unwrap();
    }
    writeln!(f, "its-live-data,synth/items/missing.stac.json").unwrap();
    drop(f);
    let out = run(ingest(inv_path.to_str().unwrap(), None).args(["--mode", "all"]));
    assert_eq!(out.status.code(), Some(3), "one missing item → partial");
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (m["items"].as_u64(), m["failed"].as_u64()),
        (Some(30), Some(1))
    );
    rt.block_on(async { assert_eq!(snapshots(cat, wh).await, 2) });

    // A fresh lock held by someone else (Python payload) blocks with exit 4 naming the holder.
    rt.block_on(async {
        let lock = Location::parse("s3://warehouse-bucket/catalog/.lock").unwrap();
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+00:00");
        let payload = format!(
            r#"{{"owner": "backfill-v2", "pid": 4242, "hostname": "py-host", "acquired": "{now}", "ttl_hours": 12}}"#
        );
        lock.put_bytes(payload.into()).await.unwrap();
    });
    let out = run(&mut ingest(inv_path.to_str().unwrap(), None));
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("backfill-v2") && err.contains("py-host"),
        "{err}"
    );
    rt.block_on(async {
        let lock = Location::parse("s3://warehouse-bucket/catalog/.lock").unwrap();
        lock.store().delete(lock.prefix()).await.unwrap();
        assert_eq!(snapshots(cat, wh).await, 2, "a blocked run must not commit");
    });

    // Two racing writers (fetching every key again, so each has a commit to make): each either
    // commits or fails fast on the lock; nothing is lost.
    let start = || {
        ingest(
            "s3://its-live-data/synth/inventory.csv",
            Some("s3://its-live-data/synth/items"),
        )
        .args(["--mode", "all"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
    };
    // Both start before either is waited for.
    let codes: Vec<i32> = [start(), start()]
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap_or(-1))
        .collect();
    assert!(codes.iter().all(|c| *c == 0 || *c == 4), "{codes:?}");
    let ok = codes.iter().filter(|c| **c == 0).count();
    assert!(ok >= 1, "{codes:?}");
    rt.block_on(async { assert_eq!(snapshots(cat, wh).await, 2 + ok) });

    // An S3 Inventory manifest.json whose header-less CSV.gz data file lives in the
    // destination bucket; fileSchema names the columns so --since works.
    moto.create_bucket("inventory-bucket");
    rt.block_on(async {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for (i, item) in Synth::new(SynthOptions::new(42, 120)).take(20).enumerate() {
            let lm = if i < 5 {
                "2020-01-01T00:00:00.000Z"
            } else {
                "2024-06-01T00:00:00.000Z"
            };
            writeln!(
                gz,
                "\"its-live-data\",\"synth/items/{}\",\"100\",\"{lm}\"",
                item.key
            )
            .unwrap();
        }
        let data = gz.finish().unwrap();
        Location::parse("s3://inventory-bucket/inv/data/part-0.csv.gz")
            .unwrap()
            .put_bytes(data.into())
            .await
            .unwrap();
    });
    moto.create_bucket("manifest-bucket");
    rt.block_on(async {
        let manifest = serde_json::json!({
            "sourceBucket": "its-live-data",
            "destinationBucket": "arn:aws:s3:::inventory-bucket",
            "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, Size, LastModifiedDate",
            "files": [{"key": "inv/data/part-0.csv.gz", "size": 1, "MD5checksum": "x"}]
        });
        Location::parse("s3://manifest-bucket/inv/2024-06-02T01-00Z/manifest.json")
            .unwrap()
            .put_bytes(manifest.to_string().into())
            .await
            .unwrap();
    });
    let out = run(&mut {
        let mut c = ingest(
            "s3://manifest-bucket/inv/2024-06-02T01-00Z/manifest.json",
            None,
        );
        // Already ingested keys: fetch them again, the manifest and --since are under test.
        c.args(["--since", "2024-01-01", "--mode", "all"]);
        c
    });
    let m = json_summary(&out, 0);
    assert_eq!(m["inventory"]["skipped_since"], 5);
    assert_eq!(m["items"], 15);
    rt.block_on(async { assert_eq!(snapshots(cat, wh).await, 3 + ok) });

    // Compaction of the S3 warehouse with the catalog on S3 under the lock.
    let out = run(with_env(cli()).args(["compact", "--json", "--warehouse", wh, "--catalog", cat]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(c["buckets_compacted"].as_u64().unwrap() > 0);
    assert!(c["duplicates_removed"].as_u64().unwrap() > 0, "{c}");
    rt.block_on(async {
        assert_eq!(
            count_objects(wh, ".parquet").await as u64,
            c["files_after"].as_u64().unwrap(),
            "replaced objects deleted after the commit"
        );
        assert_eq!(
            count_objects("s3://warehouse-bucket/catalog", ".lock").await,
            0
        );
        let catalog = Catalog::open(cat, wh).await.unwrap();
        let t = catalog.load_table().await.unwrap().unwrap();
        assert_eq!(t.metadata().snapshots().count(), 4 + ok);
        assert_eq!(
            catalog.current_files(&t).await.unwrap().len() as u64,
            c["files_after"].as_u64().unwrap()
        );
    });

    // Local warehouse and catalog with the inventory and items on S3.
    let local = tempfile::tempdir().unwrap();
    let lwh = local.path().join("wh");
    let lcat = local.path().join("catalog.db");
    let out = run(with_env(cli())
        .args([
            "ingest",
            "--json",
            "--inventory",
            "s3://its-live-data/synth/inventory.csv",
        ])
        .args(["--items-root", "s3://its-live-data/synth/items"])
        .args([
            "--warehouse",
            lwh.to_str().unwrap(),
            "--catalog",
            lcat.to_str().unwrap(),
        ]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!data_files(&lwh).is_empty());
}
