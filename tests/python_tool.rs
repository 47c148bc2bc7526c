//! Interop with the Python `earthcatalog` tool itself (PyPI 0.6.1): it reads our hash index and
//! catalog, and its lock and ours exclude each other.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use common::*;
use earthcatalog::pipeline::ingest;
use earthcatalog::report::NoReporter;

const PRELUDE: &str = r#"
import json, sys
from obstore.store import LocalStore
from earthcatalog import catalog as C
from earthcatalog.hash_index import read_hashes, hash_id
from earthcatalog.lock import S3Lock, CatalogLocked
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tool_reads_our_index_and_catalog_and_shares_the_lock() {
    let ds = Dataset::synth(120, 51).await;
    let m = ingest(&ds.options(2), &NoReporter).await.unwrap();
    let root = ds.dir.path().display().to_string();
    let script = format!(
        r#"{PRELUDE}
s = LocalStore("{root}")
hashes = read_hashes(s, "warehouse_id_hashes.parquet")
cat = C._open_sqlite("{root}/catalog.db", "file://{root}/warehouse")
t = cat.load_table("earthcatalog.stac_items")
info = C._catalog_info(t)
from shapely.geometry import box
files = info.file_paths(t, box(-180, -90, 180, 90), start_datetime="1980-01-01")
print(json.dumps({{"hashes": len(hashes), "item1": hash_id("item-1").hex(), "grid": [info.grid_type, info.grid_resolution],
                  "files": sorted(f.replace("file://", "") for f in files)}}))
"#
    );
    let out: serde_json::Value = serde_json::from_str(python(&script).trim()).unwrap();
    assert_eq!(out["hashes"].as_u64(), m.hash_index_total);
    assert_eq!(
        out["item1"],
        hex(&earthcatalog::hash_index::hash_id("item-1"))
    );
    assert_eq!(out["grid"], serde_json::json!(["h3", 2]));
    // The Python tool's pruning finds only files we also registered, with known years.
    let ours: std::collections::BTreeSet<String> = data_files(&ds.dir.path().join("warehouse"))
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let theirs: Vec<String> = serde_json::from_value(out["files"].clone()).unwrap();
    assert!(!theirs.is_empty());
    assert!(
        theirs
            .iter()
            .all(|f| ours.contains(f) && !f.contains("year=unknown"))
    );

    // A live Python process holds the lock: our ingest fails with exit 4 naming the Python
    // owner. (A holder whose process is gone would be taken over: see tests/lock.rs.)
    let hold = format!(
        r#"{PRELUDE}
import time
lock = S3Lock(owner="incremental", store=LocalStore("{root}"), key=".lock")
lock.acquire() if hasattr(lock, "acquire") else lock.__enter__()
print("held", flush=True)
time.sleep(300)
"#
    );
    let mut holder = std::process::Command::new("python3")
        .arg("-c")
        .arg(&hold)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::BufRead;
        let out = holder.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(out).lines();
        assert!(
            lines.any(|l| l.is_ok_and(|l| l.trim() == "held")),
            "the Python holder did not report the lock"
        );
    }
    let blocked = run(&mut ds.ingest_cmd());
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(blocked.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&blocked.stderr).contains("incremental"));
    std::fs::remove_file(ds.dir.path().join(".lock")).unwrap();

    // We hold the lock: the Python tool is refused with CatalogLocked naming our owner.
    let lock = earthcatalog::lock::CatalogLock::acquire(
        &earthcatalog::store::Location::parse(&format!("{root}/.lock")).unwrap(),
        earthcatalog::lock::LockOptions::new("earthcatalog-ingest"),
        std::sync::Arc::new(earthcatalog::clock::SystemClock),
    )
    .await
    .unwrap();
    let refused = format!(
        r#"{PRELUDE}
try:
    S3Lock(owner="compact", store=LocalStore("{root}"), key=".lock").__enter__()
    print("acquired")
except CatalogLocked as e:
    print("locked:", e)
"#
    );
    let said = python(&refused);
    assert!(
        said.starts_with("locked:") && said.contains("earthcatalog-ingest"),
        "{said}"
    );
    // Our default TTL is 0.25 h: Python reads it with timedelta(hours=0.25), not as 0 or 12.
    assert_eq!(lock.payload().ttl_hours, Some(0.25));
    assert!(said.contains("expires in 0:14:"), "{said}");
    lock.release().await.unwrap();

    // A fractional-TTL lock 14 min old is fresh for Python; at 16 min it is stale and Python
    // overrides it.
    for (minutes, want) in [(14, "locked:"), (16, "acquired")] {
        let ours = earthcatalog::lock::LockPayload {
            acquired: chrono::Utc::now() - chrono::Duration::minutes(minutes),
            ..earthcatalog::lock::LockPayload::for_this_process(
                "earthcatalog-ingest",
                0.25,
                chrono::Utc::now(),
            )
        };
        std::fs::write(ds.dir.path().join(".lock"), ours.to_json()).unwrap();
        let said = python(&refused);
        assert!(said.contains(want), "{minutes} min: {said}");
    }
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ds.dir.path().join(".lock")).unwrap()).unwrap();
    assert_eq!(v["owner"], "compact", "Python took the stale lock over");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
