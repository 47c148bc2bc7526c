//! The daily loop: ingest skips what the warehouse holds (counted GETs against an S3 stand-in),
//! the hash index is reconciled after a crash or corruption, `delta` and `diff` against brute
//! force, `gc` removes exactly the gone ids.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use earthcatalog::hash_index::{self, hash_id};
use earthcatalog::store::Location;

/// The synthetic items as objects of bucket `daily` and an inventory listing them.
fn served(ds: &Dataset) -> (HashMap<String, Vec<u8>>, String, BTreeSet<String>) {
    let mut objects = HashMap::new();
    let mut inventory = String::from("bucket,key\n");
    let mut keys = BTreeSet::new();
    for f in walk(&ds.dir.path().join("items")) {
        let key = f
            .strip_prefix(ds.dir.path().join("items"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        objects.insert(format!("/daily/{key}"), std::fs::read(f).unwrap());
        inventory.push_str(&format!("daily,{key}\n"));
        keys.insert(key);
    }
    let inv = ds.path("daily.csv");
    std::fs::write(&inv, inventory).unwrap();
    (objects, inv, keys)
}

/// `earthcatalog <args>` against the stand-in S3 on `port`, nothing of the caller's AWS setup.
fn s3_cli(ds: &Dataset, port: u16) -> Command {
    let mut c = cli();
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("EARTHCATALOG_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", ds.path("home"))
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .arg("--anonymous");
    c
}

fn ingest_cmd(ds: &Dataset, port: u16, inventory: &str) -> Command {
    let mut c = s3_cli(ds, port);
    c.args([
        "ingest",
        "--json",
        "--resolution",
        "1",
        "--inventory",
        inventory,
    ])
    .args([
        "--warehouse",
        &ds.path("wh"),
        "--catalog",
        &ds.path("catalog.db"),
    ]);
    c
}

/// Run a CLI command; its `--json` summary (Null when stdout is not JSON) and exit code.
fn js(cmd: &mut Command) -> (serde_json::Value, Option<i32>) {
    let out = run(cmd);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&out.stderr).into_owned())
    });
    (v, out.status.code())
}

fn total(counts: &Arc<Mutex<HashMap<String, usize>>>) -> usize {
    counts.lock().unwrap().values().sum()
}

/// Every file under the warehouse except the run reports, with its bytes.
fn warehouse_state(ds: &Dataset) -> Vec<(String, Vec<u8>)> {
    walk(&ds.dir.path().join("wh"))
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("/_reports/"))
        .map(|p| (p.to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

/// Ids of every row of the table's data files (each (id, cell) once).
fn table_ids(ds: &Dataset) -> BTreeSet<String> {
    data_files(&ds.dir.path().join("wh"))
        .iter()
        .flat_map(|p| read_rows(p).0.into_iter().map(|r| r.0))
        .collect()
}

#[test]
fn a_rerun_fetches_nothing_and_changes_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(120, 81));
    let (objects, inv, keys) = served(&ds);
    let (port, counts) = s3_stub(objects, 0);

    let (first, code) = js(&mut ingest_cmd(&ds, port, &inv));
    assert_eq!(code, Some(0), "{first}");
    assert_eq!(first["fetched"], keys.len() as u64);
    assert_eq!(first["skipped_known"], 0);
    let gets = total(&counts);
    assert_eq!(gets, keys.len());
    let before = warehouse_state(&ds);
    let catalog_before = std::fs::read(ds.path("catalog.db")).unwrap();

    let (second, code) = js(&mut ingest_cmd(&ds, port, &inv));
    assert_eq!(code, Some(0), "{second}");
    assert_eq!(second["mode"], "new");
    assert_eq!(second["fetched"], 0);
    assert_eq!(second["skipped_known"], keys.len() as u64);
    assert_eq!(second["commits"], 0);
    assert_eq!(total(&counts), gets, "the rerun fetched items");
    assert_eq!(
        warehouse_state(&ds),
        before,
        "the rerun changed the warehouse"
    );
    assert_eq!(
        std::fs::read(ds.path("catalog.db")).unwrap(),
        catalog_before
    );

    // `--mode all` fetches everything again.
    let (all, code) = js(ingest_cmd(&ds, port, &inv).args(["--mode", "all"]));
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(all["fetched"], keys.len() as u64);
    assert_eq!(total(&counts), 2 * gets);
}

#[test]
fn a_crash_between_commit_and_index_update_is_repaired_before_skipping() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(90, 82));
    let (objects, inv, keys) = served(&ds);
    let (port, counts) = s3_stub(objects, 0);
    // Killed after the commit and the upload, before the hash index update.
    let out = ingest_cmd(&ds, port, &inv)
        .env("EARTHCATALOG_FAULT", "ingest.before_index")
        .env("EARTHCATALOG_FAULT_MODE", "abort")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let index = Location::parse(&ds.path("wh_id_hashes.parquet")).unwrap();
    let rows = rt.block_on(hash_index::index_len(&index)).unwrap();
    assert_eq!(rows, None, "the index was not written before the crash");
    let committed = table_ids(&ds);
    assert_eq!(committed.len(), keys.len());
    let gets = total(&counts);

    let (rerun, code) = js(&mut ingest_cmd(&ds, port, &inv));
    assert_eq!(code, Some(0), "{rerun}");
    assert_eq!(rerun["index_reconciled"]["action"], "rebuilt");
    assert_eq!(rerun["fetched"], 0, "committed ids were fetched again");
    assert_eq!(total(&counts), gets);
    assert_eq!(table_ids(&ds), committed);
    let held = rt.block_on(hash_index::read_index(&index)).unwrap();
    let want: BTreeSet<[u8; 16]> = committed.iter().map(|id| hash_id(id)).collect();
    assert_eq!(held.into_iter().collect::<BTreeSet<_>>(), want);

    // A corrupt index is rebuilt from the table, never trusted.
    std::fs::write(ds.path("wh_id_hashes.parquet"), b"not parquet at all").unwrap();
    let (rerun, code) = js(&mut ingest_cmd(&ds, port, &inv));
    assert_eq!(code, Some(0), "{rerun}");
    assert_eq!(rerun["index_reconciled"]["action"], "rebuilt");
    assert!(
        rerun["index_reconciled"]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be read")
    );
    assert_eq!(rerun["fetched"], 0);
}

#[test]
fn an_index_behind_by_appends_is_extended_from_their_files() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(80, 83));
    let (objects, inv, keys) = served(&ds);
    let (port, counts) = s3_stub(objects, 0);
    let all: Vec<&String> = keys.iter().collect();
    let half = ds.path("half.csv");
    std::fs::write(
        &half,
        all[..40]
            .iter()
            .map(|k| format!("daily,{k}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let (first, code) = js(&mut ingest_cmd(&ds, port, &half));
    assert_eq!(code, Some(0), "{first}");
    // The second half commits, then dies before its index update.
    let out = ingest_cmd(&ds, port, &inv)
        .env("EARTHCATALOG_FAULT", "ingest.before_index")
        .env("EARTHCATALOG_FAULT_MODE", "abort")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let gets = total(&counts);
    let (rerun, code) = js(&mut ingest_cmd(&ds, port, &inv));
    assert_eq!(code, Some(0), "{rerun}");
    assert_eq!(rerun["index_reconciled"]["action"], "extended");
    assert_eq!(rerun["index_reconciled"]["snapshots"], 1);
    assert_eq!(rerun["fetched"], 0);
    assert_eq!(total(&counts), gets);
}

#[test]
fn index_tools_verify_and_rebuild() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(60, 84));
    let (objects, inv, _) = served(&ds);
    let (port, _) = s3_stub(objects, 0);
    let (_, code) = js(&mut ingest_cmd(&ds, port, &inv));
    assert_eq!(code, Some(0));
    let catalog = ds.path("catalog.db");
    let (v, code) = js(cli().args(["index", "verify", "--json", "--catalog", &catalog]));
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["missing_from_index"], 0);
    assert_eq!(v["not_in_table"], 0);
    // An index that lost ids and gained a stranger.
    let index = Location::parse(&ds.path("wh_id_hashes.parquet")).unwrap();
    let mut held = rt.block_on(hash_index::read_index(&index)).unwrap();
    held.truncate(held.len() - 3);
    held.push(hash_id("not-in-the-table"));
    rt.block_on(hash_index::write_index(&index, held, None))
        .unwrap();
    let (v, code) = js(cli().args(["index", "verify", "--json", "--catalog", &catalog]));
    assert_eq!(code, Some(3), "{v}");
    assert_eq!(v["missing_from_index"], 3);
    assert_eq!(v["not_in_table"], 1);
    assert_eq!(v["sample_missing"].as_array().unwrap().len(), 3);
    let (r, code) = js(cli().args([
        "index",
        "rebuild",
        "--json",
        "--no-lock",
        "--catalog",
        &catalog,
    ]));
    assert_eq!(code, Some(0), "{r}");
    let (v, code) = js(cli().args(["index", "verify", "--json", "--catalog", &catalog]));
    assert_eq!(code, Some(0), "{v}");
    let (s, _) = js(cli().args(["index", "stats", "--json", "--catalog", &catalog]));
    assert_eq!(s["current"], true, "{s}");
}

#[test]
fn gc_removes_exactly_the_gone_ids() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(100, 85));
    let (objects, inv, keys) = served(&ds);
    let (port, _) = s3_stub(objects, 0);
    let (_, code) = js(ingest_cmd(&ds, port, &inv).args(["--chunk-items", "30"]));
    assert_eq!(code, Some(0));
    let before = table_ids(&ds);
    let gone_keys: Vec<&String> = keys.iter().step_by(9).collect();
    let gone_ids: BTreeSet<String> = gone_keys
        .iter()
        .map(|k| hash_index::key_item_id(k, ".stac.json").to_string())
        .collect();
    let gone = ds.path("gone.csv");
    let mut text = String::from("bucket,key\n");
    for k in &gone_keys {
        text.push_str(&format!("daily,{k}\n"));
    }
    text.push_str("daily,never/was/here.stac.json\n");
    std::fs::write(&gone, text).unwrap();
    let base = [
        "gc",
        "--json",
        "--warehouse",
        &ds.path("wh"),
        "--catalog",
        &ds.path("catalog.db"),
        "--removed",
        &gone,
    ];
    let (dry, code) = js(cli().args(base).arg("--dry-run"));
    assert_eq!(code, Some(0), "{dry}");
    assert_eq!(table_ids(&ds), before, "a dry run changed the table");
    assert_eq!(dry["ids_removed"], gone_ids.len() as u64);
    assert_eq!(dry["ids_not_found"], 1);
    let (m, code) = js(cli().args(base));
    assert_eq!(code, Some(0), "{m}");
    let after = table_ids(&ds);
    let want: BTreeSet<String> = before.difference(&gone_ids).cloned().collect();
    assert_eq!(after, want);
    // The index agrees with the table, and knows the snapshot it reflects.
    let catalog = ds.path("catalog.db");
    let (v, code) = js(cli().args(["index", "verify", "--json", "--catalog", &catalog]));
    assert_eq!(code, Some(0), "{v}");
    let (s, _) = js(cli().args(["index", "stats", "--json", "--catalog", &catalog]));
    assert_eq!(s["current"], true, "{s}");
    // Their keys come back as new in the next ingest.
    let (again, code) = js(&mut ingest_cmd(&ds, port, &inv));
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(again["fetched"], gone_keys.len() as u64);
}

#[test]
fn delta_and_diff_match_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    let (g, code) = js(cli().args([
        "generate-inventory",
        "--out",
        out.to_str().unwrap(),
        "--keys",
        "20000",
        "--shards",
        "4",
        "--churn",
        "0.01",
    ]));
    assert_eq!(code, Some(0), "{g}");
    let day1 = g["day1"].as_str().unwrap().to_string();
    let day2 = g["day2"].as_str().unwrap().to_string();
    let index = g["index"].as_str().unwrap().to_string();
    // Brute force from the generator's own key function.
    use earthcatalog::synth::inventory::key_of;
    let n = 20_000u64;
    let every = 100u64;
    let added: BTreeSet<String> = (n..n + n / every).map(key_of).collect();
    let changed: BTreeSet<String> = (0..n).filter(|i| i % every == 2).map(key_of).collect();
    let removed: BTreeSet<String> = (0..n).filter(|i| i % every == 1).map(key_of).collect();

    // delta: day 2 against the index of day 1 → exactly the added keys.
    let prefix = dir.path().join("delta");
    let (d, code) = js(cli().args([
        "delta",
        "--json",
        "--inventory",
        &day2,
        "--hash-index",
        &index,
        "--delta-prefix",
        prefix.to_str().unwrap(),
        "--date",
        "2026-11-25",
    ]));
    assert_eq!(code, Some(0), "{d}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt
        .block_on(earthcatalog::delta::delta_keys(
            d["delta"].as_str().unwrap(),
        ))
        .unwrap();
    let got: BTreeSet<String> = rows.into_iter().map(|(_, k)| k).collect();
    assert_eq!(got, added);

    // diff: new or changed, and removed, with a small memory bound (many partitions).
    let new = dir.path().join("new.parquet");
    let gone = dir.path().join("gone.parquet");
    let (m, code) = js(cli().args([
        "diff",
        "--json",
        "--current",
        &day2,
        "--previous",
        &day1,
        "--out",
        new.to_str().unwrap(),
        "--removed",
        gone.to_str().unwrap(),
        "--max-memory",
        "64MB",
    ]));
    assert_eq!(code, Some(0), "{m}");
    assert!(m["partitions"].as_u64().unwrap() >= 512, "{m}");
    let keys = |p: &std::path::Path| -> BTreeSet<String> {
        rt.block_on(earthcatalog::delta::delta_keys(p.to_str().unwrap()))
            .unwrap()
            .into_iter()
            .map(|(_, k)| k)
            .collect()
    };
    let want_new: BTreeSet<String> = added.union(&changed).cloned().collect();
    assert_eq!(keys(&new), want_new);
    assert_eq!(keys(&gone), removed);
    assert_eq!(
        m["unchanged"],
        n - changed.len() as u64 - removed.len() as u64
    );
    // Nothing of the spill is left behind.
    let spills = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("earthcatalog-diff-{}-", std::process::id()))
        })
        .count();
    assert_eq!(spills, 0);
}

#[test]
fn diff_killed_during_its_spills_leaves_nothing_and_reruns_clean() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    let (g, code) = js(cli().args([
        "generate-inventory",
        "--out",
        out.to_str().unwrap(),
        "--keys",
        "5000",
        "--shards",
        "2",
        "--churn",
        "0.01",
    ]));
    assert_eq!(code, Some(0), "{g}");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let new = dir.path().join("new.parquet");
    let diff = || {
        let mut c = cli();
        c.args(["diff", "--json", "--current", g["day2"].as_str().unwrap()])
            .args(["--previous", g["day1"].as_str().unwrap()])
            .args([
                "--out",
                new.to_str().unwrap(),
                "--temp-dir",
                tmp.to_str().unwrap(),
            ]);
        c
    };
    let killed = run(diff()
        .env("EARTHCATALOG_FAULT", "diff.after_spill")
        .env("EARTHCATALOG_FAULT_MODE", "abort"));
    assert!(!killed.status.success());
    assert!(!new.exists(), "a killed diff left an output");
    let leaked = std::fs::read_dir(&tmp).unwrap().count();
    assert_eq!(
        leaked, 1,
        "the killed run's spill directory stays until the next run"
    );
    let (m, code) = js(&mut diff());
    assert_eq!(code, Some(0), "{m}");
    assert_eq!(m["added"], 50);
    assert_eq!(m["changed"], 50);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "stale spills removed"
    );
}

#[test]
fn gc_killed_before_or_after_its_commit_converges() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(60, 86));
    let (objects, inv, keys) = served(&ds);
    let (port, counts) = s3_stub(objects, 0);
    let (_, code) = js(&mut ingest_cmd(&ds, port, &inv));
    assert_eq!(code, Some(0));
    let before = table_ids(&ds);
    let gone_keys: Vec<&String> = keys.iter().step_by(7).collect();
    let gone = ds.path("gone.csv");
    std::fs::write(
        &gone,
        gone_keys
            .iter()
            .map(|k| format!("daily,{k}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let gc = || {
        let mut c = cli();
        c.args(["gc", "--json", "--warehouse", &ds.path("wh")])
            .args(["--catalog", &ds.path("catalog.db"), "--removed", &gone]);
        c
    };
    // Killed before the commit: the table is as it was.
    let killed = run(gc()
        .env("EARTHCATALOG_FAULT", "gc.before_commit")
        .env("EARTHCATALOG_FAULT_MODE", "abort"));
    assert!(!killed.status.success());
    assert_eq!(table_ids_registered(&ds), before);
    // Killed after the commit, before the index update: the ids are gone from the table and
    // the index still has them — the next ingest rebuilds it and fetches them again.
    let killed = run(gc()
        .env("EARTHCATALOG_FAULT", "gc.after_commit")
        .env("EARTHCATALOG_FAULT_MODE", "abort"));
    assert!(!killed.status.success());
    let gone_ids: BTreeSet<String> = gone_keys
        .iter()
        .map(|k| hash_index::key_item_id(k, ".stac.json").to_string())
        .collect();
    let after = table_ids_registered(&ds);
    assert_eq!(after, before.difference(&gone_ids).cloned().collect());
    let gets = total(&counts);
    let (rerun, code) = js(&mut ingest_cmd(&ds, port, &inv));
    assert_eq!(code, Some(0), "{rerun}");
    assert_eq!(rerun["index_reconciled"]["action"], "rebuilt", "{rerun}");
    assert_eq!(rerun["fetched"], gone_keys.len() as u64);
    assert_eq!(total(&counts), gets + gone_keys.len());
    assert_eq!(table_ids_registered(&ds), before);
}

/// Ids of the rows of the table's registered files (what PyIceberg would read).
fn table_ids_registered(ds: &Dataset) -> BTreeSet<String> {
    let out = run(cli().args([
        "search",
        "--catalog",
        &ds.path("catalog.db"),
        "--format",
        "ndjson",
        "--fields",
        "id",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_killed_ingest_reruns_without_refetching_what_was_committed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(240, 87));
    let (objects, inv, keys) = served(&ds);
    let (port, counts) = s3_stub(objects, 0);
    // Small chunks, a commit after each: killed (SIGKILL) after the first commits landed.
    let mut child = ingest_cmd(&ds, port, &inv)
        .args([
            "--chunk-items",
            "40",
            "--commit-every",
            "1",
            "--concurrency",
            "4",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let index = Location::parse(&ds.path("wh_id_hashes.parquet")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let rows = rt
            .block_on(hash_index::index_len(&index))
            .ok()
            .flatten()
            .unwrap_or(0);
        if rows >= 40 || child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no commit landed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let committed = table_ids_registered(&ds);
    assert!(!committed.is_empty());
    let gets = total(&counts);
    let (rerun, code) = js(&mut ingest_cmd(&ds, port, &inv));
    assert_eq!(code, Some(0), "{rerun}");
    // Nothing committed is fetched again; at most the killed chunk's items are repeated.
    let refetched = total(&counts) - gets;
    assert_eq!(refetched as u64, rerun["fetched"].as_u64().unwrap());
    assert!(refetched <= keys.len() - committed.len(), "{refetched}");
    let ids: BTreeSet<String> = keys
        .iter()
        .map(|k| hash_index::key_item_id(k, ".stac.json").to_string())
        .collect();
    assert_eq!(table_ids_registered(&ds), ids);
    // After compaction each id is stored once per cell.
    let (c, code) = js(cli().args([
        "compact",
        "--json",
        "--leftover-min-age",
        "0",
        "--warehouse",
        &ds.path("wh"),
        "--catalog",
        &ds.path("catalog.db"),
    ]));
    assert_eq!(code, Some(0), "{c}");
    for f in data_files(&ds.dir.path().join("wh")) {
        let (rows, _) = read_rows(&f);
        let distinct: BTreeSet<&String> = rows.iter().map(|r| &r.0).collect();
        assert_eq!(distinct.len(), rows.len(), "{} repeats an id", f.display());
    }
}
