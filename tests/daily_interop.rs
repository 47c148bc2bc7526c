//! Delta and hash-index files both ways with the Python earthcatalog tool (PyPI 0.6.1 and the
//! scripts of its sdist): ours ingests the Python tool's `pending/delta_<date>.parquet`, the
//! Python tool's readers (`daily_delta.py`, run_backfill's `_iter_inventory`) read ours, and an
//! index the Python tool wrote is rebuilt (it records no snapshot) before it is trusted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::BTreeSet;

use common::*;

/// The `daily_delta.py` module of the 0.6.1 sdist (downloaded once into the temp dir).
const LOAD_DAILY: &str = r#"
import importlib.util, os, subprocess, sys, tarfile, tempfile
cache = os.path.join(tempfile.gettempdir(), "earthcatalog-0.6.1-sdist")
path = os.path.join(cache, "earthcatalog-0.6.1", "scripts", "daily_delta.py")
if not os.path.exists(path):
    os.makedirs(cache, exist_ok=True)
    subprocess.check_call([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", ":all:", "--ignore-requires-python", "earthcatalog==0.6.1", "-d", cache])
    with tarfile.open(os.path.join(cache, "earthcatalog-0.6.1.tar.gz")) as t:
        t.extractall(cache)
spec = importlib.util.spec_from_file_location("daily_delta", path)
dd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dd)
"#;

fn keys_of(ds: &Dataset) -> Vec<String> {
    walk(&ds.dir.path().join("items"))
        .into_iter()
        .map(|f| {
            f.strip_prefix(ds.dir.path().join("items"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn delta_files_and_indexes_cross_both_ways() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(40, 101));
    let keys = keys_of(&ds);
    let root = ds.dir.path().display().to_string();

    // 1. The Python tool writes a delta of half the keys: ours ingests it like any inventory.
    let half: Vec<&String> = keys.iter().step_by(2).collect();
    let rows: Vec<String> = half
        .iter()
        .map(|k| {
            let id = k.rsplit('/').next().unwrap().trim_end_matches(".stac.json");
            format!("('its-live-data', '{k}', dd._hash_id('{id}'))")
        })
        .collect();
    let script = format!(
        "{LOAD_DAILY}\nn = dd._write_delta_parquet_local([{}], '{root}/py/pending/delta_2026-11-24.parquet')\nprint(n)\n",
        rows.join(", ")
    );
    assert_eq!(python(&script).trim(), half.len().to_string());
    let out = run(cli().args([
        "ingest",
        "--no-lock",
        "--json",
        "--inventory",
        &format!("{root}/py/pending/delta_2026-11-24.parquet"),
        "--items-root",
        &ds.items_root(),
        "--warehouse",
        &ds.path("warehouse"),
        "--catalog",
        &ds.path("catalog.db"),
    ]));
    let m = json_summary(&out, 0);
    assert_eq!(m["items"], half.len() as u64);

    // 2. Our delta of the whole inventory against our index holds exactly the other half, and
    //    the Python tool's readers see the same rows.
    let out = run(cli().args([
        "delta",
        "--json",
        "--inventory",
        &ds.inventory(),
        "--catalog",
        &ds.path("catalog.db"),
        "--delta-prefix",
        &format!("{root}/ours"),
        "--date",
        "2026-11-25",
    ]));
    let d = json_summary(&out, 0);
    assert_eq!(d["new_items"], (keys.len() - half.len()) as u64, "{d}");
    let delta = d["delta"]
        .as_str()
        .unwrap()
        .trim_start_matches("file://")
        .to_string();
    let script = format!(
        r#"{LOAD_DAILY}
import json
from earthcatalog.pipelines.incremental import _iter_inventory
rows = dd._read_pending_delta_local("{delta}")
ok = all(h == dd._hash_id(k.rsplit("/", 1)[-1].removesuffix(".stac.json")) for _, k, h in rows)
print(json.dumps({{"keys": sorted(k for _, k, _ in rows), "hashes_ok": ok,
                   "iter": sorted(r[1] for r in _iter_inventory("{delta}"))}}))
"#
    );
    let v: serde_json::Value = serde_json::from_str(python(&script).trim()).unwrap();
    let want: BTreeSet<String> = keys.iter().filter(|k| !half.contains(k)).cloned().collect();
    let got: BTreeSet<String> = serde_json::from_value(v["keys"].clone()).unwrap();
    assert_eq!(got, want);
    assert_eq!(v["hashes_ok"], true);
    let iter: BTreeSet<String> = serde_json::from_value(v["iter"].clone()).unwrap();
    assert_eq!(iter, want);

    // 3. An index written by the Python tool (no snapshot recorded) is rebuilt from the table
    //    before it decides anything: here it claims every id, including the half not ingested.
    let all_rows: Vec<String> = keys
        .iter()
        .map(|k| {
            let id = k.rsplit('/').next().unwrap().trim_end_matches(".stac.json");
            format!("hash_id('{id}')")
        })
        .collect();
    let script = format!(
        r#"
from obstore.store import LocalStore
from earthcatalog.hash_index import hash_id, write_hashes, read_hashes
n = write_hashes(set([{}]), LocalStore("{root}"), "warehouse_id_hashes.parquet")
print(n)
"#,
        all_rows.join(", ")
    );
    assert_eq!(python(&script).trim(), keys.len().to_string());
    let out = run(ds.ingest_cmd().args(["--no-lock", "--json"]));
    let m = json_summary(&out, 0);
    assert_eq!(m["index_reconciled"]["action"], "rebuilt", "{m}");
    assert_eq!(m["items"], (keys.len() - half.len()) as u64);
    // The Python tool reads the index we left: every id once.
    let script = format!(
        r#"
from obstore.store import LocalStore
from earthcatalog.hash_index import read_hashes
print(len(read_hashes(LocalStore("{root}"), "warehouse_id_hashes.parquet")))
"#
    );
    assert_eq!(python(&script).trim(), keys.len().to_string());
}
