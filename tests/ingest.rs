//! End-to-end ingest on local storage: layout, contents, edge cases, failures, commits, grid
//! conflicts, crash safety.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use earthcatalog::catalog::Catalog;
use earthcatalog::grid::GridConfig;
use earthcatalog::pipeline::ingest;
use earthcatalog::report::NoReporter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingests_every_item_into_one_cell_and_year_per_file() {
    let ds = Dataset::synth(300, 7).await;
    let opts = ds.options(2);
    let m = ingest(&opts, &NoReporter).await.unwrap();
    assert_eq!(m.failed, 0, "{:?}", m.failures_by_reason);
    assert_eq!(m.fetched, 300);
    assert_eq!(m.items, 300);
    assert_eq!(m.commits, 1);
    assert!(m.snapshot_id.is_some());

    let wh = ds.dir.path().join("warehouse");
    let files = data_files(&wh);
    assert_eq!(files.len() as u64, m.files);
    let mut ids = BTreeSet::new();
    let mut rows = 0u64;
    let mut per_id_cells: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let (file_rows, kv) = read_rows(f);
        assert!(
            kv.iter().any(|(k, _)| k == "geo"),
            "{} has no geo metadata",
            f.display()
        );
        let rel = f.strip_prefix(&wh).unwrap().to_string_lossy().into_owned();
        let mut parts = rel.split('/');
        let cell = parts
            .next()
            .unwrap()
            .strip_prefix("grid_partition=")
            .unwrap()
            .to_string();
        let year = parts
            .next()
            .unwrap()
            .strip_prefix("year=")
            .unwrap()
            .to_string();
        let name = parts.next().unwrap();
        assert!(
            name.starts_with("part_000000_") && name.ends_with(".parquet"),
            "{name}"
        );
        let intervals = read_intervals(f);
        for ((id, c, dt), interval) in file_rows.iter().zip(&intervals) {
            assert_eq!(c, &cell, "row cell differs from its directory in {rel}");
            // The year of datetime, else of the midpoint of start/end (docs/decisions.md).
            let y = dt
                .or_else(|| interval.map(|(s, e)| s + (e - s) / 2))
                .map(|t| {
                    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(t)
                        .unwrap()
                        .format("%Y")
                        .to_string()
                })
                .unwrap_or_else(|| "unknown".into());
            assert_eq!(y, year, "row year differs from its directory in {rel}");
            ids.insert(id.clone());
            per_id_cells
                .entry(id.clone())
                .or_default()
                .insert(c.clone());
        }
        rows += file_rows.len() as u64;
    }
    assert_eq!(rows, m.rows);
    assert_eq!(ids, ds.item_ids(), "every item id must be in the warehouse");
    // null/empty geometries are kept under __none__
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("grid_partition=__none__"))
    );
    // items without datetime but with an interval are in a year (every synthetic item has a
    // start and an end), so none is under year=unknown
    assert!(
        !files
            .iter()
            .any(|f| f.to_string_lossy().contains("year=unknown"))
    );
    // the wrapped antimeridian footprint does not wrap the globe
    assert!(per_id_cells.values().all(|c| c.len() < 60));
    // unknown properties became columns
    for col in [
        "sat:relative_orbit",
        "instruments",
        "eo:cloud_cover",
        "properties_overflow",
    ] {
        assert!(
            m.schema_columns_added.iter().any(|c| c == col),
            "missing column {col}"
        );
    }
    assert!(m.parse.overflow_values >= 2);
    assert_eq!(m.parse.datetime_date_only, 1);
    assert_eq!(m.parse.datetime_naive, 1);

    // The catalog agrees with the files.
    let cat = Catalog::open(&opts.catalog, &opts.warehouse).await.unwrap();
    let table = cat.load_table().await.unwrap().unwrap();
    let props = table.metadata().properties();
    assert_eq!(props["earthcatalog.grid.type"], "h3");
    assert_eq!(props["earthcatalog.grid.resolution"], "2");
    assert!(props.contains_key("schema.name-mapping.default"));
    let schema = table.metadata().current_schema();
    assert_eq!(schema.field_by_name("proj:code").unwrap().id, 8);
    assert!(schema.field_by_name("sat:relative_orbit").unwrap().id > 28);
    assert_eq!(
        table
            .metadata()
            .current_snapshot()
            .unwrap()
            .summary()
            .additional_properties["added-records"],
        m.rows.to_string()
    );
    // New entries are written into manifests of at most 256 files, clustered by cell.
    let snapshot = table.metadata().current_snapshot().unwrap();
    let list = table.manifest_list_reader(snapshot).load().await.unwrap();
    assert_eq!(list.entries().len(), (m.files as usize).div_ceil(256));
    // Hash index has one row per distinct id.
    let idx = earthcatalog::store::Location::parse(&m.hash_index_path).unwrap();
    assert_eq!(
        earthcatalog::hash_index::index_len(&idx).await.unwrap(),
        Some(ids.len() as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_datetime_lands_in_its_utc_year() {
    let ds = Dataset::synth(300, 11).await;
    let m = ingest(&ds.options(1), &NoReporter).await.unwrap();
    assert_eq!(m.failed, 0);
    let synth = earthcatalog::synth::Synth::new(earthcatalog::synth::SynthOptions::new(11, 300));
    let item = synth.item_at(211);
    let dt = item.json["properties"]["datetime"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(dt.ends_with("-05:00") && dt.contains("-12-31T22:"), "{dt}");
    let local_year: i32 = dt[..4].parse().unwrap();
    let id = item.json["id"].as_str().unwrap();
    let wh = ds.dir.path().join("warehouse");
    let dirs: BTreeSet<String> = data_files(&wh)
        .into_iter()
        .filter(|f| read_rows(f).0.iter().any(|(i, _, _)| i == id))
        .map(|f| {
            f.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(dirs, BTreeSet::from([format!("year={}", local_year + 1)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_reported_and_good_items_committed() {
    let ds = Dataset::synth(20, 3).await;
    // Add three bad rows: a missing object, invalid JSON, and an item without id.
    std::fs::write(
        ds.path("items/bad/invalid.stac.json").as_str(),
        b"{not json",
    )
    .unwrap_or_else(|_| {
        std::fs::create_dir_all(ds.path("items/bad")).unwrap();
        std::fs::write(ds.path("items/bad/invalid.stac.json"), b"{not json").unwrap();
    });
    std::fs::write(
        ds.path("items/bad/noid.stac.json"),
        br#"{"type":"Feature","geometry":null}"#,
    )
    .unwrap();
    let mut inv = std::fs::read_to_string(ds.inventory()).unwrap();
    inv.push_str("its-live-data,bad/missing.stac.json,1,2024-01-01T00:00:00Z\n");
    inv.push_str("its-live-data,bad/invalid.stac.json,1,2024-01-01T00:00:00Z\n");
    inv.push_str("its-live-data,bad/noid.stac.json,1,2024-01-01T00:00:00Z\n");
    inv.push_str("its-live-data,bad/readme.txt,1,2024-01-01T00:00:00Z\n");
    std::fs::write(ds.inventory(), inv).unwrap();

    let out = run(ds
        .ingest_cmd()
        .args(["--json", "--no-lock", "--resolution", "1"]));
    let m = json_summary(&out, 3);
    assert_eq!(m["failed"], 3);
    assert_eq!(m["items"], 20);
    assert_eq!(m["inventory"]["skipped_suffix"], 1);
    let report = m["failures_report"]
        .as_str()
        .unwrap()
        .trim_start_matches("file://")
        .to_string();
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.starts_with("bucket,key,reason\n"));
    assert!(
        text.contains("bad/missing.stac.json,fetch: not found"),
        "{text}"
    );
    assert!(
        text.contains("bad/invalid.stac.json,parse: invalid JSON"),
        "{text}"
    );
    assert!(
        text.contains("bad/noid.stac.json,parse: item has no string id"),
        "{text}"
    );
    assert_eq!(m["commits"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_every_makes_one_snapshot_per_chunk_group_and_grid_conflicts_fail() {
    let ds = Dataset::synth(120, 5).await;
    let mut opts = ds.options(1);
    opts.chunk_items = 40;
    opts.commit_every = Some(1);
    let m = ingest(&opts, &NoReporter).await.unwrap();
    assert_eq!(m.commits, 3);
    let cat = Catalog::open(&opts.catalog, &opts.warehouse).await.unwrap();
    let table = cat.load_table().await.unwrap().unwrap();
    // create + 2 schema/property commits + 3 appends; at least 3 append snapshots
    assert_eq!(table.metadata().snapshots().count(), 3);
    let names: BTreeSet<String> = data_files(&ds.dir.path().join("warehouse"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy()[..11].to_string())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "part_000000".into(),
            "part_000001".into(),
            "part_000002".into()
        ])
    );

    // A different resolution on the existing table is a configuration error, exit 2.
    let mut again = ds.options(2);
    again.grid = Some(GridConfig::H3 { resolution: 2 });
    let err = ingest(&again, &NoReporter).await.unwrap_err();
    assert!(matches!(err, earthcatalog::Error::Config(_)), "{err}");
    let out = run(ds.ingest_cmd().args(["--no-lock", "--resolution", "3"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("grid"));
}

fn snapshot_of(catalog: &str, warehouse: &str) -> Option<i64> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cat = Catalog::open(catalog, warehouse).await.unwrap();
        cat.load_table()
            .await
            .unwrap()
            .and_then(|t| t.metadata().current_snapshot_id())
    })
}

#[test]
fn killed_runs_leave_the_catalog_at_its_last_commit_and_rerun_converges() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(60, 9));
    let (cat, wh) = (ds.path("catalog.db"), ds.path("warehouse"));
    let base = |limit: &str| {
        let mut c = ds.ingest_cmd();
        c.args(["--resolution", "1", "--limit", limit]);
        c
    };
    // A first committed run.
    assert!(run(&mut base("30")).status.success());
    let first = snapshot_of(&cat, &wh).expect("first snapshot");
    // Crash (abort = kill -9 semantics) at each point before the commit is durable.
    for point in [
        "ingest.before_write",
        "ingest.after_write",
        "catalog.before_commit",
    ] {
        let out = run(base("60")
            .env("EARTHCATALOG_FAULT", point)
            .env("EARTHCATALOG_FAULT_MODE", "abort"));
        assert!(!out.status.success(), "{point} did not crash");
        assert_eq!(
            snapshot_of(&cat, &wh),
            Some(first),
            "catalog moved after a crash at {point}"
        );
        // The lock of the killed run is still there, its holder known to be gone (the next
        // run on this host takes it over; tests/lock.rs covers that).
        let lock = ds.dir.path().join(".lock");
        assert!(lock.exists(), "killed run should leave its lock");
        let status = json_summary(
            &run(cli().args(["lock", "status", "--json", "--catalog", &cat])),
            0,
        );
        assert_eq!(status["holder"], "dead", "{status}");
        std::fs::remove_file(&lock).unwrap();
    }
    // Crash right after the commit: the commit is durable.
    let out = run(base("60")
        .env("EARTHCATALOG_FAULT", "catalog.after_commit")
        .env("EARTHCATALOG_FAULT_MODE", "abort"));
    assert!(!out.status.success());
    let after = snapshot_of(&cat, &wh).unwrap();
    assert_ne!(after, first);
    std::fs::remove_file(ds.dir.path().join(".lock")).unwrap();
    // A clean rerun succeeds and every registered file exists.
    assert!(run(&mut base("60")).status.success());
    let rt2 = tokio::runtime::Runtime::new().unwrap();
    rt2.block_on(async {
        let c = Catalog::open(&cat, &wh).await.unwrap();
        let t = c.load_table().await.unwrap().unwrap();
        let scan = t.scan().build().unwrap();
        use futures::TryStreamExt;
        let tasks: Vec<_> = scan
            .plan_files()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert!(!tasks.is_empty());
        for task in tasks {
            let p = task.data_file_path.trim_start_matches("file://");
            assert!(
                std::path::Path::new(p).exists(),
                "registered file missing: {p}"
            );
        }
    });
}

/// Every input of `docs/decisions.md` (inputs that break the Python tool) is ingested (none dropped, none crashing the run),
/// with the spatial and temporal placement the contract asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_failure_inputs_are_ingested_correctly() {
    use earthcatalog::synth::{SpecialKind, Synth, SynthOptions};
    let ds = Dataset::synth(300, 42).await;
    let m = ingest(&ds.options(1), &NoReporter).await.unwrap();
    assert_eq!(m.failed, 0);
    let wh = ds.dir.path().join("warehouse");
    // id → (cells, year dirs) and the overflow column of each row.
    let mut placed: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for f in data_files(&wh) {
        let year = f
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (id, cell, _) in read_rows(&f).0 {
            let e = placed.entry(id).or_default();
            e.0.insert(cell);
            e.1.insert(year.clone());
        }
    }
    let synth = Synth::new(SynthOptions::new(42, 300));
    let cell_of = |lon: f64, lat: f64| {
        h3o::LatLng::new(lat, lon)
            .unwrap()
            .to_cell(h3o::Resolution::One)
            .to_string()
    };
    for kind in SpecialKind::ALL {
        let item = synth.item_at(kind.forced_index());
        let id = item.json["id"].as_str().unwrap().to_string();
        let (cells, years) = placed
            .get(&id)
            .unwrap_or_else(|| panic!("{kind:?} item {id} was dropped"));
        match kind {
            SpecialKind::NullGeometry | SpecialKind::EmptyPolygon => {
                assert_eq!(cells, &BTreeSet::from(["__none__".to_string()]), "{kind:?}")
            }
            SpecialKind::AntimeridianWrapped | SpecialKind::AntimeridianSplit => {
                assert!(
                    cells.len() <= 6,
                    "{kind:?}: {} cells wrap the globe",
                    cells.len()
                );
                let c = &item.json["geometry"]["coordinates"];
                let first = if kind == SpecialKind::AntimeridianSplit {
                    &c[0][0][0]
                } else {
                    &c[0][0]
                };
                let lat = first[1].as_f64().unwrap();
                for lon in [179.99, -179.99] {
                    let near: Vec<String> = [-0.05, 0.0, 0.05]
                        .iter()
                        .map(|d| cell_of(lon, lat + d))
                        .collect();
                    assert!(
                        near.iter().any(|n| cells.contains(n)),
                        "{kind:?}: no cell at lon {lon}: {cells:?}"
                    );
                }
            }
            SpecialKind::SouthPoleRing => {
                assert!(
                    cells.contains(&cell_of(0.0, -90.0)),
                    "pole cell missing: {cells:?}"
                )
            }
            SpecialKind::MissingDatetime | SpecialKind::NullDatetime => {
                // No datetime: the year of the start/end interval's midpoint.
                let at = |k: &str| {
                    chrono::DateTime::parse_from_rfc3339(
                        item.json["properties"][k].as_str().unwrap(),
                    )
                    .unwrap()
                    .timestamp_micros()
                };
                let (s, e) = (at("start_datetime"), at("end_datetime"));
                let mid = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(s + (e - s) / 2)
                    .unwrap();
                assert_eq!(
                    years,
                    &BTreeSet::from([format!("year={}", mid.format("%Y"))]),
                    "{kind:?}"
                )
            }
            SpecialKind::DateOnlyDatetime | SpecialKind::NaiveDatetime => {
                let dt = item.json["properties"]["datetime"].as_str().unwrap();
                assert_eq!(
                    years,
                    &BTreeSet::from([format!("year={}", &dt[..4])]),
                    "{kind:?}"
                )
            }
            _ => assert!(!cells.contains("__none__"), "{kind:?}"),
        }
    }
}

#[test]
fn a_failed_run_still_writes_its_summary_and_failures_report() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(20, 81));
    let mut inv = std::fs::read_to_string(ds.inventory()).unwrap();
    inv.push_str("its-live-data,gone/missing.stac.json,1,2024-01-01T00:00:00Z\n");
    std::fs::write(ds.inventory(), inv).unwrap();
    let out = run(ds
        .ingest_cmd()
        .arg("--no-lock")
        .env("EARTHCATALOG_FAULT", "ingest.after_write"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("injected fault"));
    let reports = walk(&ds.dir.path().join("warehouse/_reports"));
    let summary = reports
        .iter()
        .find(|p| p.to_string_lossy().ends_with("_summary.json"))
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(summary).unwrap()).unwrap();
    assert!(m["error"].as_str().unwrap().contains("ingest.after_write"));
    assert_eq!(m["failed"], 1);
    assert_eq!(m["commits"], 0);
    let failures = reports
        .iter()
        .find(|p| p.to_string_lossy().ends_with("_failures.csv"))
        .unwrap();
    assert!(
        std::fs::read_to_string(failures)
            .unwrap()
            .contains("gone/missing.stac.json")
    );
}

/// What a local warehouse holds: every data file with its bytes, the run reports and the
/// hash index, so a refused run can be shown to have written nothing.
fn warehouse_state(ds: &Dataset) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = walk(&ds.dir.path().join("warehouse"));
    files.push(ds.dir.path().join("warehouse_id_hashes.parquet"));
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect()
}

/// (live data file paths, rows they register, field id of every column) of the catalog's table.
fn table_contents(
    catalog: &str,
    warehouse: &str,
) -> (BTreeSet<String>, u64, BTreeMap<String, i32>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cat = Catalog::open(catalog, warehouse).await.unwrap();
        let t = cat.load_table().await.unwrap().expect("a table");
        let files = cat.current_files(&t).await.unwrap();
        let ids = t
            .metadata()
            .current_schema()
            .as_struct()
            .fields()
            .iter()
            .map(|f| (f.name.clone(), f.id))
            .collect();
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
            files.iter().map(|f| f.data_file.record_count()).sum(),
            ids,
        )
    })
}

fn on_disk(ds: &Dataset) -> (BTreeSet<String>, u64) {
    let files = data_files(&ds.dir.path().join("warehouse"));
    let rows = files.iter().map(|f| read_rows(f).0.len() as u64).sum();
    (
        files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        rows,
    )
}

/// A truncated `catalog.db` over a full warehouse: ingest refuses (exit 2, naming `repair`)
/// and writes nothing; `repair` rebuilds the table from the newest metadata file (grid,
/// evolved columns with their ids) and registers every file; ingest works again.
#[test]
fn a_lost_table_is_refused_until_repair_rebuilds_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(270, 91));
    let (cat, wh) = (ds.path("catalog.db"), ds.path("warehouse"));
    let first = run(ds.ingest_cmd().args(["--resolution", "2", "--json"]));
    json_summary(&first, 0);
    let (files, rows) = on_disk(&ds);
    let (live, live_rows, ids) = table_contents(&cat, &wh);
    assert_eq!((&live, live_rows), (&files, rows));
    assert!(ids.values().any(|id| *id > 28), "evolved columns: {ids:?}");

    std::fs::write(&cat, b"").unwrap();
    let before = warehouse_state(&ds);
    let refused = run(ds.ingest_cmd().args(["--resolution", "2"]));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("earthcatalog repair") && stderr.contains(&cat),
        "{stderr}"
    );
    assert!(
        warehouse_state(&ds) == before,
        "a refused ingest writes nothing"
    );
    assert!(!ds.dir.path().join(".lock").exists(), "lock released");
    // Compaction refuses too (it would otherwise find nothing to do and say so).
    let out = run(cli().args(["compact", "--warehouse", &wh, "--catalog", &cat]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("earthcatalog repair"));

    // A repair killed before the catalog takes the rebuilt table leaves it without one: the
    // table is built aside, never half-registered.
    let repair = || {
        let mut c = cli();
        c.args([
            "repair",
            "--json",
            "--no-lock",
            "--warehouse",
            &wh,
            "--catalog",
            &cat,
        ]);
        c
    };
    let out = run(repair()
        .env("EARTHCATALOG_FAULT", "repair.before_register")
        .env("EARTHCATALOG_FAULT_MODE", "abort"));
    assert!(!out.status.success(), "repair was not killed");
    assert_eq!(
        run(&mut ds.ingest_cmd()).status.code(),
        Some(2),
        "still refused"
    );

    let m = json_summary(&run(&mut repair()), 0);
    assert!(
        m["rebuilt"]["source"]
            .as_str()
            .unwrap()
            .starts_with("table metadata file://"),
        "{m}"
    );
    assert_eq!(m["rebuilt"]["grid"], "h3:2");
    assert_eq!(m["added"].as_array().unwrap().len(), files.len());
    let (live, live_rows, ids_after) = table_contents(&cat, &wh);
    assert_eq!(live, files, "every file registered");
    assert_eq!(live_rows, rows, "every row registered");
    assert_eq!(ids_after, ids, "columns keep their field ids");
    // PyIceberg reads every row.
    let script = format!(
        r#"
from pyiceberg.catalog.sql import SqlCatalog
t = SqlCatalog("earthcatalog", uri="sqlite:///{cat}", warehouse="file://{wh}").load_table("earthcatalog.stac_items")
print(t.scan().to_arrow().num_rows, t.properties["earthcatalog.grid.resolution"])
"#
    );
    assert_eq!(python(&script).trim(), format!("{rows} 2"));

    // Ingest works again and appends to the rebuilt table (every key fetched again: the
    // rebuilt table is a new table, whose ids the reconciled index holds).
    let again = run(ds.ingest_cmd().args(["--mode", "all"]));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    let (live, _, _) = table_contents(&cat, &wh);
    assert_eq!(live, on_disk(&ds).0);
    assert!(live.len() > files.len());
}

/// Without any table metadata the grid is not guessed: `repair` asks for `--resolution`,
/// refuses one that contradicts the cells, and with the right one keeps the files' field ids.
#[test]
fn repair_without_table_metadata_needs_the_resolution() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(270, 92));
    let (cat, wh) = (ds.path("catalog.db"), ds.path("warehouse"));
    assert!(
        run(ds.ingest_cmd().args(["--resolution", "2"]))
            .status
            .success()
    );
    let (files, rows) = on_disk(&ds);
    let (_, _, ids) = table_contents(&cat, &wh);
    assert!(ids.values().any(|id| *id > 28), "evolved columns: {ids:?}");
    std::fs::write(&cat, b"").unwrap();
    std::fs::remove_dir_all(ds.dir.path().join("warehouse/earthcatalog")).unwrap();

    let repair = |extra: &[&str]| {
        run(cli()
            .args(["repair", "--json", "--warehouse", &wh, "--catalog", &cat])
            .args(extra))
    };
    let out = repair(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--resolution"), "{stderr}");
    let out = repair(&["--resolution", "3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("resolution 2"), "{stderr}");
    assert!(
        !ds.dir.path().join("warehouse/earthcatalog").exists(),
        "a refused repair writes no metadata"
    );
    // Still no table: ingest keeps refusing.
    assert_eq!(run(&mut ds.ingest_cmd()).status.code(), Some(2));

    let m = json_summary(&repair(&["--resolution", "2"]), 0);
    assert_eq!(m["rebuilt"]["source"], "--resolution");
    let (live, live_rows, ids_after) = table_contents(&cat, &wh);
    assert_eq!((live, live_rows), (files, rows));
    // Evolved columns come back from the footers with the ids the files carry.
    assert_eq!(ids_after, ids);
    assert!(run(&mut ds.ingest_cmd()).status.success());
}

/// The same on S3 (moto): compact and repair on a mistyped catalog create nothing; a
/// truncated remote `catalog.db` makes ingest refuse without uploading or writing anything;
/// repair rebuilds the table and uploads the catalog; ingest works again.
#[test]
fn a_lost_table_on_s3_is_refused_and_rebuilt() {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let moto = Moto::start();
    moto.create_bucket("lost-table");
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(moto.endpoint())
        .with_allow_http(true)
        .with_bucket_name("lost-table")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_region("us-east-1")
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = || {
        rt.block_on(async {
            let mut all: Vec<(String, u64)> = store
                .list(None)
                .map_ok(|m| (m.location.to_string(), m.size))
                .try_collect()
                .await
                .unwrap();
            all.sort();
            all
        })
    };
    let ds = rt.block_on(Dataset::synth(60, 93));
    let (wh, cat) = ("s3://lost-table/wh", "s3://lost-table/cat/catalog.db");
    let cmd = |args: &[&str]| {
        let mut c = cli();
        for (k, v) in moto.env() {
            c.env(k, v);
        }
        c.args(args);
        c
    };
    let ingest = || {
        let mut c = cmd(&[
            "ingest",
            "--json",
            "--resolution",
            "1",
            "--warehouse",
            wh,
            "--catalog",
            cat,
        ]);
        c.args([
            "--inventory",
            &ds.inventory(),
            "--items-root",
            &ds.items_root(),
        ]);
        c
    };

    for command in ["compact", "repair"] {
        let typo = "s3://lost-table/typo/catalog.db";
        let out = run(&mut cmd(&[command, "--warehouse", wh, "--catalog", typo]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains(typo), "{command}: {stderr}");
        assert!(objects().is_empty(), "{command} created {:?}", objects());
    }

    let first = json_summary(&run(&mut ingest()), 0);
    rt.block_on(store.put(&"cat/catalog.db".into(), bytes::Bytes::new().into()))
        .unwrap();
    let before = objects();
    let out = run(&mut ingest());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("earthcatalog repair"), "{stderr}");
    assert_eq!(
        objects(),
        before,
        "a refused ingest writes and uploads nothing"
    );

    let m = json_summary(
        &run(&mut cmd(&[
            "repair",
            "--json",
            "--warehouse",
            wh,
            "--catalog",
            cat,
        ])),
        0,
    );
    assert_eq!(m["rebuilt"]["grid"], "h3:1");
    let info = json_summary(&run(&mut cmd(&["info", "--json", "--catalog", cat])), 0);
    assert_eq!(info["rows"], first["rows"]);
    assert_eq!(info["files"], first["files"]);
    json_summary(&run(ingest().args(["--mode", "all"])), 0);
    let info = json_summary(&run(&mut cmd(&["info", "--json", "--catalog", cat])), 0);
    assert_eq!(
        info["rows"].as_u64().unwrap(),
        2 * first["rows"].as_u64().unwrap()
    );
}

/// `(start_datetime, end_datetime)` of each row of a data file, when it has both (µs).
fn read_intervals(path: &std::path::Path) -> Vec<Option<(i64, i64)>> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .map(|c| c.as_primitive::<TimestampMicrosecondType>().clone())
        };
        let (s, e) = (col("start_datetime"), col("end_datetime"));
        for i in 0..batch.num_rows() {
            let v = |a: &Option<arrow_array::TimestampMicrosecondArray>| {
                a.as_ref().and_then(|a| (!a.is_null(i)).then(|| a.value(i)))
            };
            out.push(v(&s).zip(v(&e)));
        }
    }
    out
}
