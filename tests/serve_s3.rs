//! `earthcatalog serve` over a catalog on an S3 API server (moto on 127.0.0.1), updated by an
//! ingest while the server runs: the new snapshot is picked up without a restart, no request
//! fails during the swap, a search paged across it stays on its snapshot, and a broken catalog
//! upload is logged while the previous snapshot keeps being served.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn page_all(server: &ServeProcess, first: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut uri = Some(first.to_string());
    while let Some(u) = uri {
        let r = server.get(&u);
        assert_eq!(r.status, 200, "{u}: {}", String::from_utf8_lossy(&r.body));
        let page = r.json();
        out.extend(page_ids(&page));
        uri = next_link(&page, &server.base);
    }
    out
}

#[test]
fn a_catalog_on_s3_updated_by_an_ingest_is_picked_up_without_a_restart() {
    let moto = Moto::start();
    moto.create_bucket("serve-src");
    moto.create_bucket("serve-wh");
    let env = moto.env();
    let with_env = |mut c: std::process::Command| {
        for (k, v) in &env {
            c.env(k, v);
        }
        c
    };
    let cat = "s3://serve-wh/catalog/catalog.db";
    let ingest = |name: &str, seed: &str, count: &str| {
        let out = run(with_env(cli()).args([
            "generate",
            "--out",
            &format!("s3://serve-src/{name}"),
            "--count",
            count,
            "--seed",
            seed,
        ]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(with_env(cli()).args([
            "-q",
            "ingest",
            "--inventory",
            &format!("s3://serve-src/{name}/inventory.csv"),
            "--items-root",
            &format!("s3://serve-src/{name}/items"),
            "--warehouse",
            "s3://serve-wh/warehouse",
            "--catalog",
            cat,
            "--resolution",
            "2",
        ]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ingest("a", "31", "120");
    let server = ServeProcess::start(cat, &["--reload-secs", "0.5"], &env);
    let first_snapshot = server.get("/_health").json()["snapshot_id"].clone();
    assert!(first_snapshot.is_i64(), "{first_snapshot}");
    let before: BTreeSet<String> = page_all(&server, "/search?limit=1000")
        .into_iter()
        .collect();

    // A search started on the first snapshot.
    let p1 = server.get("/search?limit=9").json();
    let t2 = next_link(&p1, &server.base).unwrap();

    // Clients keep searching while the catalog changes and the server swaps snapshots.
    let stop = Arc::new(AtomicBool::new(false));
    // The client thread holds only the address (the process is killed when the test ends,
    // even when it fails) and stops after a bounded time in any case.
    let client = {
        let base = server.base.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            let until = Instant::now() + Duration::from_secs(180);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                for path in [
                    "/search?limit=20&bbox=-180,-90,180,90",
                    "/collections/itslive-granules",
                    "/search?limit=5&datetime=2015-01-01T00:00:00Z/..",
                ] {
                    statuses.push((path, http_request(&base, "GET", path, &[], b"").status));
                }
            }
            statuses
        })
    };
    ingest("b", "32", "80");
    let deadline = Instant::now() + Duration::from_secs(120);
    let second_snapshot = loop {
        let s = server.get("/_health").json()["snapshot_id"].clone();
        if s != first_snapshot {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the new snapshot was not picked up:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Keep the clients going a little after the swap too.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let statuses = client.join().unwrap();
    assert!(statuses.len() >= 6, "{}", statuses.len());
    let failed: Vec<_> = statuses.iter().filter(|(_, s)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "requests failed during the swap: {failed:?}"
    );

    // New searches see the new items; the search started before stays on its snapshot.
    let after: BTreeSet<String> = page_all(&server, "/search?limit=1000")
        .into_iter()
        .collect();
    assert!(after.len() > before.len() && before.is_subset(&after));
    let mut old = page_ids(&p1);
    old.extend(page_all(&server, &t2));
    let old_set: BTreeSet<String> = old.iter().cloned().collect();
    assert_eq!(old_set.len(), old.len());
    assert_eq!(old_set, before);

    // A catalog that cannot be loaded: logged, and the last good snapshot is still served.
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (k, v) in &env {
        // SAFETY: single test in this binary; no other thread reads the environment now.
        unsafe { std::env::set_var(k, v) };
    }
    rt.block_on(async {
        let loc = earthcatalog::store::Location::parse(cat).unwrap();
        loc.put_bytes(bytes::Bytes::from_static(b"not a sqlite database"))
            .await
            .unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = server.get("/_health").json();
        if h["last_reload_error"].is_string() {
            assert_eq!(h["snapshot_id"], second_snapshot);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed reload was not reported: {h}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let still: BTreeSet<String> = page_all(&server, "/search?limit=1000")
        .into_iter()
        .collect();
    assert_eq!(still, after);
}
