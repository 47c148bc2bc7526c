//! Compaction and repair: overlapping ingests, Python-format warehouses, thresholds, dry runs,
//! crashes at every step, corrupt files, repair after deletions and strays.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use std::sync::Arc;

use earthcatalog::catalog::Catalog;
use earthcatalog::clock::TestClock;
use earthcatalog::maintenance::{
    CompactOptions, RepairOptions, compact_warehouse, compact_warehouse_with_clock, repair,
};
use earthcatalog::pipeline::ingest;
use earthcatalog::report::NoReporter;

/// Every (id, cell) pair and every (cell, year) bucket's file count in a local warehouse.
fn census(wh: &Path) -> (Vec<(String, String)>, BTreeMap<String, usize>) {
    let mut pairs = Vec::new();
    let mut buckets: BTreeMap<String, usize> = BTreeMap::new();
    for f in data_files(wh) {
        let bucket = f
            .parent()
            .unwrap()
            .strip_prefix(wh)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        *buckets.entry(bucket).or_default() += 1;
        for (id, cell, _) in read_rows(&f).0 {
            pairs.push((id, cell));
        }
    }
    pairs.sort();
    (pairs, buckets)
}

async fn live_paths(catalog: &str, warehouse: &str) -> (BTreeSet<String>, usize, Option<String>) {
    let cat = Catalog::open(catalog, warehouse).await.unwrap();
    let t = cat.load_table().await.unwrap().unwrap();
    let files = cat.current_files(&t).await.unwrap();
    let op = t
        .metadata()
        .current_snapshot()
        .map(|s| format!("{:?}", s.summary().operation).to_lowercase());
    (
        files
            .iter()
            .map(|f| {
                f.data_file
                    .file_path()
                    .trim_start_matches("file://")
                    .to_string()
            })
            .collect(),
        t.metadata().snapshots().count(),
        op,
    )
}

/// A clock `h` hours ahead of the wall clock (file ages are measured against it).
fn hours_from_now(h: i64) -> Arc<TestClock> {
    Arc::new(TestClock::new(
        chrono::Utc::now() + chrono::Duration::hours(h),
    ))
}

fn compact_opts(ds: &Dataset) -> CompactOptions {
    CompactOptions {
        warehouse: ds.path("warehouse"),
        catalog: ds.path("catalog.db"),
        ..CompactOptions::default()
    }
}

/// Two overlapping ingests, the second from updated copies of 10 items.
async fn overlapping(seed: u64) -> (Dataset, BTreeSet<String>) {
    let ds = Dataset::synth(120, seed).await;
    ingest(&ds.options(1), &NoReporter).await.unwrap();
    // Updated copies: later `updated`, changed `version`.
    let updated_dir = ds.path("items2");
    let mut changed = BTreeSet::new();
    for (i, src) in walk(&ds.dir.path().join("items")).into_iter().enumerate() {
        let rel = src.strip_prefix(ds.dir.path().join("items")).unwrap();
        let dst = Path::new(&updated_dir).join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&src).unwrap()).unwrap();
        if i % 12 == 0 && v["properties"]["datetime"].is_string() && !v["geometry"].is_null() {
            v["properties"]["updated"] = "2030-01-01T00:00:00Z".into();
            v["properties"]["version"] = "999".into();
            changed.insert(v["id"].as_str().unwrap().to_string());
        }
        std::fs::write(&dst, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    let mut second = ds.options(1);
    second.fetch.items_root = Some(updated_dir);
    // Every key again (the updated copies have the same ids).
    second.mode = earthcatalog::pipeline::IngestMode::All;
    ingest(&second, &NoReporter).await.unwrap();
    (ds, changed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_dedups_keeps_newest_and_commits_once() {
    let (ds, changed) = overlapping(31).await;
    let wh = ds.dir.path().join("warehouse");
    let (pairs_before, buckets_before) = census(&wh);
    let distinct: BTreeSet<(String, String)> = pairs_before.iter().cloned().collect();
    let (_, snaps_before, _) = live_paths(&ds.path("catalog.db"), &ds.path("warehouse")).await;
    let props_before = {
        let c = Catalog::open(&ds.path("catalog.db"), &ds.path("warehouse"))
            .await
            .unwrap();
        c.load_table()
            .await
            .unwrap()
            .unwrap()
            .metadata()
            .properties()
            .clone()
    };

    let m = compact_warehouse(&compact_opts(&ds), &NoReporter)
        .await
        .unwrap();
    assert_eq!(m.buckets_compacted as usize, buckets_before.len());
    assert_eq!(m.files_before as usize, 2 * buckets_before.len());
    assert_eq!(m.files_after as usize, buckets_before.len());
    assert_eq!(m.rows_after as usize, distinct.len());
    assert_eq!(
        m.duplicates_removed as usize,
        pairs_before.len() - distinct.len()
    );
    assert!(m.failed_buckets.is_empty());

    let (pairs_after, buckets_after) = census(&wh);
    assert!(
        buckets_after.values().all(|n| *n == 1),
        "one file per bucket"
    );
    let after_set: BTreeSet<_> = pairs_after.iter().cloned().collect();
    assert_eq!(
        after_set.len(),
        pairs_after.len(),
        "no id twice within a bucket"
    );
    assert_eq!(after_set, distinct, "every (id, cell) kept");
    let (live, snaps_after, op) = live_paths(&ds.path("catalog.db"), &ds.path("warehouse")).await;
    assert_eq!(snaps_after, snaps_before + 1, "exactly one new snapshot");
    assert_eq!(op.as_deref(), Some("replace"));
    let on_disk: BTreeSet<String> = data_files(&wh)
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        live, on_disk,
        "catalog and warehouse agree, old files deleted"
    );
    let c = Catalog::open(&ds.path("catalog.db"), &ds.path("warehouse"))
        .await
        .unwrap();
    assert_eq!(
        c.load_table()
            .await
            .unwrap()
            .unwrap()
            .metadata()
            .properties(),
        &props_before
    );

    // The newest version (by `updated`) won: PyIceberg sees version 999 for every changed id.
    let script = format!(
        r#"
import json
from pyiceberg.catalog.sql import SqlCatalog
t = SqlCatalog("earthcatalog", uri="sqlite:///{db}", warehouse="file://{wh}").load_table("earthcatalog.stac_items")
a = t.scan(selected_fields=("id", "version", "grid_partition")).to_arrow()
print(json.dumps({{"rows": a.num_rows, "versions": sorted(set(v for i, v in zip(a.column("id").to_pylist(), a.column("version").to_pylist()) if i in {ids:?}))}}))
"#,
        db = ds.path("catalog.db"),
        wh = ds.path("warehouse"),
        ids = changed.iter().collect::<Vec<_>>(),
    );
    let out: serde_json::Value = serde_json::from_str(python(&script).trim()).unwrap();
    assert_eq!(out["rows"], distinct.len());
    assert_eq!(out["versions"], serde_json::json!(["999"]));

    // A second compaction has nothing to do.
    let again = compact_warehouse(&compact_opts(&ds), &NoReporter)
        .await
        .unwrap();
    assert_eq!(again.buckets_compacted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_above_and_dry_run_change_nothing() {
    let (ds, _) = overlapping(32).await;
    let wh = ds.dir.path().join("warehouse");
    let snapshot = |p: &Path| {
        walk(p)
            .into_iter()
            .map(|f| (f.clone(), std::fs::read(&f).unwrap()))
            .collect::<Vec<_>>()
    };
    let before = (snapshot(&wh), std::fs::read(ds.path("catalog.db")).unwrap());
    let mut o = compact_opts(&ds);
    o.threshold = 3;
    let m = compact_warehouse(&o, &NoReporter).await.unwrap();
    assert_eq!((m.buckets_compacted, m.files_after), (0, m.files_before));
    o.threshold = 2;
    o.dry_run = true;
    let m = compact_warehouse(&o, &NoReporter).await.unwrap();
    assert!(m.buckets_compacted > 0 && m.dry_run);
    assert_eq!(m.files_after, m.files_before);
    let after = (snapshot(&wh), std::fs::read(ds.path("catalog.db")).unwrap());
    assert!(
        before == after,
        "threshold-above and dry-run must not change a byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacts_a_warehouse_in_the_python_tools_format() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.db");
    let wh = dir.path().join("warehouse");
    std::fs::create_dir_all(&wh).unwrap();
    // pyarrow files like the Python tool wrote: ms timestamps, int32 metrics, snappy,
    // large_utf8, part_NNNNNN.parquet names, no field ids; registered with PyIceberg add_files.
    let script = pyiceberg_create_table(
        &db.to_string_lossy(),
        &wh.to_string_lossy(),
        r#"{"earthcatalog.grid.type": "h3", "earthcatalog.grid.resolution": "2"}"#,
    ) + &format!(
        r#"
import os, struct, pyarrow as pa, pyarrow.parquet as pq
d = "{wh}/grid_partition=82091ffffffffff/year=2020"
os.makedirs(d)
wkb = struct.pack("<bIdd", 1, 1, 0.0, 65.0)
def f(name, ids, updated, pvp):
    n = len(ids)
    tb = pa.table({{
        "id": pa.array(ids, pa.large_string()),
        "grid_partition": pa.array(["82091ffffffffff"] * n, pa.large_string()),
        "geometry": pa.array([wkb] * n, pa.binary()),
        "datetime": pa.array([1590000000123] * n, pa.timestamp("ms", tz="UTC")),
        "platform": pa.array(["LC08"] * n, pa.large_string()),
        "percent_valid_pixels": pa.array([pvp] * n, pa.int32()),
        "updated": pa.array([updated] * n, pa.timestamp("ms", tz="UTC")),
        "assets": pa.array(['{{"data": {{"href": "x"}}}}'] * n, pa.large_string()),
    }})
    pq.write_table(tb, f"{{d}}/{{name}}", compression="snappy")
    return f"{{d}}/{{name}}"
paths = [f("part_000000.parquet", ["a", "b"], 1600000000000, 10),
         f("part_000001.parquet", ["b", "c"], 1700000000000, 20),
         f("part_000002_ab12cd34.parquet", ["d"], 1600000000000, 30)]
t.add_files(paths)
print(len(t.scan().to_arrow()))
"#,
        wh = wh.display(),
    );
    assert_eq!(python(&script).trim(), "5");
    let m = compact_warehouse(
        &CompactOptions {
            warehouse: wh.to_string_lossy().into_owned(),
            catalog: db.to_string_lossy().into_owned(),
            ..CompactOptions::default()
        },
        &NoReporter,
    )
    .await
    .unwrap();
    assert_eq!(
        (m.files_before, m.files_after, m.rows_before, m.rows_after),
        (3, 1, 5, 4)
    );
    assert!(m.failed_buckets.is_empty(), "{:?}", m.failed_buckets);
    let files = data_files(&wh);
    assert_eq!(files.len(), 1);
    assert!(
        files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("compacted_")
    );
    let check = format!(
        r#"
from pyiceberg.catalog.sql import SqlCatalog
t = SqlCatalog("earthcatalog", uri="sqlite:///{db}", warehouse="file://{wh}").load_table("earthcatalog.stac_items")
a = t.scan().to_arrow().sort_by("id")
print(a.column("id").to_pylist(), a.column("percent_valid_pixels").to_pylist(), str(a.schema.field("datetime").type), a.column("datetime")[0].value, t.properties["earthcatalog.grid.resolution"])
"#,
        db = db.display(),
        wh = wh.display()
    );
    assert_eq!(
        python(&check).trim(),
        "['a', 'b', 'c', 'd'] [10, 20, 20, 30] timestamp[us, tz=UTC] 1590000000123000 2"
    );
}

#[test]
fn crashes_at_every_compaction_step_leave_a_consistent_catalog_and_rerun_converges() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for point in [
        "compact.merge",
        "compact.after_write",
        "catalog.before_commit",
        "catalog.after_commit",
        "compact.before_delete",
    ] {
        let (ds, _) = rt.block_on(overlapping(40));
        let (cat, wh) = (ds.path("catalog.db"), ds.path("warehouse"));
        let (pairs, _) = census(Path::new(&wh));
        let distinct: BTreeSet<_> = pairs.into_iter().collect();
        let out = run(cli()
            .args([
                "compact",
                "--warehouse",
                &wh,
                "--catalog",
                &cat,
                "--use-lock",
            ])
            .env("EARTHCATALOG_FAULT", point)
            .env("EARTHCATALOG_FAULT_MODE", "abort"));
        assert!(!out.status.success(), "{point}: did not crash");
        // Consistent: every registered file exists and the rows it registers cover every pair.
        let (live, _, _) = rt.block_on(live_paths(&cat, &wh));
        let mut covered = BTreeSet::new();
        for p in &live {
            assert!(
                Path::new(p).exists(),
                "{point}: registered file missing {p}"
            );
            for (id, cell, _) in read_rows(Path::new(p)).0 {
                covered.insert((id, cell));
            }
        }
        assert_eq!(covered, distinct, "{point}: committed rows lost");
        // The killed run's lock stays; clear it like an operator would after checking.
        std::fs::remove_file(ds.dir.path().join(".lock")).unwrap();
        // Rerun (once the killed run's files are past the leftover age) converges: one file
        // per bucket, disk == catalog, nothing unregistered.
        let m = rt
            .block_on(compact_warehouse_with_clock(
                &CompactOptions {
                    use_lock: true,
                    ..compact_opts(&ds)
                },
                &NoReporter,
                hours_from_now(7),
            ))
            .unwrap();
        assert!(
            m.failed_buckets.is_empty(),
            "{point}: {:?}",
            m.failed_buckets
        );
        assert!(
            m.unregistered_files.is_empty(),
            "{point}: {:?}",
            m.unregistered_files
        );
        let (pairs_after, buckets) = census(Path::new(&wh));
        assert!(buckets.values().all(|n| *n == 1), "{point}: {buckets:?}");
        assert_eq!(
            pairs_after.into_iter().collect::<BTreeSet<_>>(),
            distinct,
            "{point}"
        );
        let (live, _, _) = rt.block_on(live_paths(&cat, &wh));
        let on_disk: BTreeSet<String> = data_files(Path::new(&wh))
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(live, on_disk, "{point}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_fails_only_its_bucket() {
    let (ds, _) = overlapping(33).await;
    let wh = ds.dir.path().join("warehouse");
    let victim = data_files(&wh).into_iter().next().unwrap();
    std::fs::write(&victim, b"not parquet at all").unwrap();
    let m = compact_warehouse(&compact_opts(&ds), &NoReporter)
        .await
        .unwrap();
    assert_eq!(m.failed_buckets.len(), 1);
    let bucket = victim
        .parent()
        .unwrap()
        .strip_prefix(&wh)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(m.failed_buckets[0].bucket, bucket);
    assert_eq!(m.buckets_compacted + 1, m.buckets_scanned);
    let (live, _, _) = live_paths(&ds.path("catalog.db"), &ds.path("warehouse")).await;
    assert!(
        live.contains(victim.to_string_lossy().as_ref()),
        "failed bucket stays registered"
    );
    assert!(live.iter().all(|p| Path::new(p).exists()));
    // CLI: partial exit code.
    std::fs::write(&victim, b"still not parquet").unwrap();
    let out = run(cli().args([
        "compact",
        "--warehouse",
        &ds.path("warehouse"),
        "--catalog",
        &ds.path("catalog.db"),
    ]));
    assert_eq!(out.status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_catalog_pointed_at_another_warehouse_deletes_nothing() {
    // The catalog references files under `warehouse`; compacting "another" warehouse with a
    // copy of that catalog must not read-and-delete the original files.
    let (ds, _) = overlapping(35).await;
    let wh = ds.dir.path().join("warehouse");
    let before = data_files(&wh);
    let other = ds.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(ds.dir.path().join("catalog.db"), other.join("catalog.db")).unwrap();
    let mut opts = compact_opts(&ds);
    opts.warehouse = other.join("warehouse").to_string_lossy().into_owned();
    opts.catalog = other.join("catalog.db").to_string_lossy().into_owned();
    let m = compact_warehouse(&opts, &NoReporter).await.unwrap();
    assert_eq!(m.buckets_compacted, 0);
    assert!(m.buckets_scanned > 0);
    assert_eq!(m.failed_buckets.len() as u64, m.buckets_scanned);
    assert!(m.failed_buckets[0].reason.contains("not in the warehouse"));
    assert_eq!(
        data_files(&wh),
        before,
        "the original warehouse is untouched"
    );
    assert!(data_files(&other).is_empty(), "nothing written elsewhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_drops_missing_and_registers_strays_in_one_commit() {
    let ds = Dataset::synth(60, 34).await;
    ingest(&ds.options(1), &NoReporter).await.unwrap();
    let wh = ds.dir.path().join("warehouse");
    let files = data_files(&wh);
    let deleted = files[0].clone();
    std::fs::remove_file(&deleted).unwrap();
    let stray = files[1].parent().unwrap().join("part_000077.parquet");
    std::fs::copy(&files[1], &stray).unwrap();
    std::fs::write(files[1].parent().unwrap().join("notes.txt"), b"ignored").unwrap();
    let opts = RepairOptions {
        warehouse: ds.path("warehouse"),
        catalog: ds.path("catalog.db"),
        dry_run: true,
        ..RepairOptions::default()
    };
    let db_before = std::fs::read(ds.path("catalog.db")).unwrap();
    let m = repair(&opts).await.unwrap();
    assert_eq!(m.removed.len(), 1);
    assert!(m.removed[0].ends_with(&*deleted.file_name().unwrap().to_string_lossy()));
    assert_eq!(m.added.len(), 1);
    assert_eq!(
        std::fs::read(ds.path("catalog.db")).unwrap(),
        db_before,
        "dry run"
    );
    let (_, snaps, _) = live_paths(&ds.path("catalog.db"), &ds.path("warehouse")).await;
    let m = repair(&RepairOptions {
        dry_run: false,
        ..opts
    })
    .await
    .unwrap();
    assert_eq!((m.removed.len(), m.added.len()), (1, 1));
    let (live, snaps_after, _) = live_paths(&ds.path("catalog.db"), &ds.path("warehouse")).await;
    assert_eq!(snaps_after, snaps + 1);
    let on_disk: BTreeSet<String> = data_files(&wh)
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(live, on_disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_and_repair_never_create_a_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("no/such/catalog.db");
    let typo = typo.to_str().unwrap();
    let wh = dir.path().join("warehouse");
    for command in ["compact", "repair"] {
        for lock in ["--use-lock", "--no-lock"] {
            let out = run(cli().args([
                command,
                lock,
                "--catalog",
                typo,
                "--warehouse",
                wh.to_str().unwrap(),
            ]));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} {lock}: {stderr}");
            assert!(stderr.contains(typo), "{stderr}");
        }
    }
    let err = compact_warehouse(
        &CompactOptions {
            catalog: typo.into(),
            warehouse: wh.to_string_lossy().into_owned(),
            use_lock: true,
            ..CompactOptions::default()
        },
        &NoReporter,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, earthcatalog::Error::NotFound { .. }), "{err}");
    assert!(
        walk(dir.path()).is_empty() && !dir.path().join("no").exists(),
        "nothing created"
    );
}

/// A killed ingest's chunk leaves unregistered `part_*` files (and an interrupted local put a
/// `*.parquet#<n>` staging file). A locked compaction deletes them once they are older than
/// the leftover age, never a registered file; younger ones, or without the lock, are only
/// reported; a dry run lists them.
#[test]
fn killed_ingest_leftovers_are_deleted_by_a_locked_compaction_once_old_enough() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(90, 36));
    let (cat, wh) = (ds.path("catalog.db"), ds.path("warehouse"));
    let ingest_cmd = |limit: &str| {
        let mut c = ds.ingest_cmd();
        c.args(["--resolution", "1", "--no-lock", "--limit", limit]);
        c
    };
    assert!(run(&mut ingest_cmd("40")).status.success());
    let (registered, _, _) = rt.block_on(live_paths(&cat, &wh));
    let rows_of = |paths: &BTreeSet<String>| -> Vec<(String, String)> {
        let mut rows: Vec<_> = paths
            .iter()
            .flat_map(|p| read_rows(Path::new(p)).0)
            .map(|(id, cell, _)| (id, cell))
            .collect();
        rows.sort();
        rows
    };
    let registered_rows = rows_of(&registered);
    let out = run(ingest_cmd("90")
        .env("EARTHCATALOG_FAULT", "ingest.after_write")
        .env("EARTHCATALOG_FAULT_MODE", "abort"));
    assert!(!out.status.success(), "the ingest was not killed");
    let on_disk = || -> BTreeSet<String> {
        data_files(Path::new(&wh))
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    };
    let mut leftovers: BTreeSet<String> = on_disk().difference(&registered).cloned().collect();
    assert!(!leftovers.is_empty(), "the killed chunk left files");
    // An interrupted local put leaves a staging file object_store never lists.
    let staging = format!("{}#1", leftovers.iter().next().unwrap());
    std::fs::write(&staging, b"half a parquet file").unwrap();
    let staging_url = format!("file://{staging}");
    let urls = |paths: &BTreeSet<String>| -> BTreeSet<String> {
        paths.iter().map(|p| format!("file://{p}")).collect()
    };
    let mut leftover_urls = urls(&leftovers);
    leftover_urls.insert(staging_url.clone());
    // Nothing to merge: only the leftovers are at stake.
    let opts = CompactOptions {
        use_lock: true,
        threshold: 1_000,
        ..compact_opts(&ds)
    };
    let compact = |opts: &CompactOptions, clock| {
        rt.block_on(compact_warehouse_with_clock(opts, &NoReporter, clock))
            .unwrap()
    };
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<String>>();

    // Too young (a writer may still commit them): untouched, reported.
    let m = compact(&opts, hours_from_now(5));
    assert!(m.leftovers_deleted.is_empty(), "{:?}", m.leftovers_deleted);
    assert_eq!(set(&m.unregistered_files), leftover_urls);
    // Old enough but no lock: untouched, reported.
    let m = compact(
        &CompactOptions {
            use_lock: false,
            ..opts.clone()
        },
        hours_from_now(7),
    );
    assert!(m.leftovers_deleted.is_empty());
    assert_eq!(set(&m.unregistered_files), leftover_urls);
    // Dry run: listed, not deleted.
    let m = compact(
        &CompactOptions {
            dry_run: true,
            ..opts.clone()
        },
        hours_from_now(7),
    );
    assert_eq!(set(&m.leftovers_to_delete), leftover_urls);
    assert!(m.leftovers_deleted.is_empty());
    leftovers.insert(staging.clone());
    assert!(
        leftovers.iter().all(|p| Path::new(p).exists()),
        "nothing deleted yet"
    );
    // The CLI's dry run with the age guard at 0 lists them too (--json).
    let out = run(cli().args([
        "compact",
        "--dry-run",
        "--json",
        "--leftover-min-age",
        "0",
        "--threshold",
        "1000",
        "--warehouse",
        &wh,
        "--catalog",
        &cat,
    ]));
    let j = json_summary(&out, 0);
    let listed: BTreeSet<String> = j["leftovers_to_delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, leftover_urls);

    // Locked and old enough: deleted; every registered file and row intact.
    let m = compact(&opts, hours_from_now(7));
    assert_eq!(set(&m.leftovers_deleted), leftover_urls);
    assert!(
        m.unregistered_files.is_empty(),
        "{:?}",
        m.unregistered_files
    );
    assert!(leftovers.iter().all(|p| !Path::new(p).exists()));
    assert_eq!(on_disk(), registered, "only the leftovers went");
    let (live, _, _) = rt.block_on(live_paths(&cat, &wh));
    assert_eq!(live, registered);
    assert_eq!(rows_of(&live), registered_rows);
    // Rerunning the inventory ingests the killed chunk's items again.
    assert!(run(&mut ingest_cmd("90")).status.success());
}
