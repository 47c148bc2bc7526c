//! File replacement in one Iceberg commit (`Catalog::replace_files`), the live-file and
//! history listings, and interop of the resulting `replace` snapshot with PyIceberg.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use common::python;
use earthcatalog::Error;
use earthcatalog::catalog::Catalog;
use earthcatalog::catalog::datafile::data_file_from_footer;
use earthcatalog::geoparquet::{WriterOptions, encode_group, sort_rows};
use earthcatalog::grid::GridConfig;
use earthcatalog::item::{Columns, ItemRow, ParseCounters, parse_item};
use earthcatalog::partition::PartitionValue;
use earthcatalog::schema::table_columns;
use futures::TryStreamExt;
use iceberg::spec::{DataFile, ManifestStatus, Operation};
use iceberg::table::Table;

const CELL_A: &str = "8001fffffffffff";
const CELL_B: &str = "8003fffffffffff";
const CELL_C: &str = "8005fffffffffff";

struct Fixture {
    dir: tempfile::TempDir,
    catalog: Catalog,
}

impl Fixture {
    async fn new() -> (Self, Table) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(
            dir.path().join("catalog.db").to_str().unwrap(),
            dir.path().join("warehouse").to_str().unwrap(),
        )
        .await
        .unwrap();
        let table = catalog
            .load_or_create(&GridConfig::H3 { resolution: 1 }, "test_id_hashes.parquet")
            .await
            .unwrap();
        (Self { dir, catalog }, table)
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("catalog.db")
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    fn metadata_dir(&self) -> PathBuf {
        self.warehouse().join("earthcatalog/stac_items/metadata")
    }

    /// Write a real GeoParquet data file of `cell`/`year` holding items `ids`.
    fn write_file(
        &self,
        table: &Table,
        cell: &str,
        year: i32,
        ids: &[&str],
        name: &str,
    ) -> DataFile {
        self.write_file_as(table, cell, year, ids, name, false)
    }

    /// [`Self::write_file`], its entry's path the local path (`/…`) instead of the canonical
    /// `file://` URL when `plain_path`.
    fn write_file_as(
        &self,
        table: &Table,
        cell: &str,
        year: i32,
        ids: &[&str],
        name: &str,
        plain_path: bool,
    ) -> DataFile {
        let schema = table.metadata().current_schema();
        let table_cols = table_columns(schema);
        let columns = Columns::new(&table_cols);
        let mut counters = ParseCounters::default();
        let parsed: Vec<ItemRow> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let body = format!(
                    r#"{{"id":"{id}","geometry":{{"type":"Point","coordinates":[{x},1]}},"properties":{{"platform":"S2A","datetime":"{year}-03-0{d}T00:00:00Z"}}}}"#,
                    x = i + 1,
                    d = i + 1
                );
                parse_item(body.as_bytes(), &columns, &mut counters).unwrap().0
            })
            .collect();
        let mut rows: Vec<&ItemRow> = parsed.iter().collect();
        sort_rows(&mut rows);
        let key = PartitionValue {
            cell: cell.to_string(),
            year: Some(year),
        };
        let rel = format!("{}/{name}", key.dir());
        let file = encode_group(
            &rows,
            cell,
            &columns,
            &table_cols,
            &WriterOptions::default(),
            &rel,
        )
        .unwrap();
        let local = self.warehouse().join(&rel);
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, &file.bytes).unwrap();
        let path = match plain_path {
            true => local.to_str().unwrap().to_string(),
            false => self.catalog.warehouse().url_of(&rel),
        };
        data_file_from_footer(
            schema,
            table.metadata().default_partition_spec_id(),
            &file.metadata,
            &path,
            file.bytes.len() as u64,
            &key,
        )
        .unwrap()
    }
}

fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

async fn live_paths(catalog: &Catalog, table: &Table) -> BTreeSet<String> {
    catalog
        .current_files(table)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.data_file.file_path().to_string())
        .collect()
}

async fn planned_paths(table: &Table) -> BTreeSet<String> {
    table
        .scan()
        .build()
        .unwrap()
        .plan_files()
        .await
        .unwrap()
        .map_ok(|t| t.data_file_path().to_string())
        .try_collect()
        .await
        .unwrap()
}

async fn scanned_rows(table: &Table) -> usize {
    let batches: Vec<_> = table
        .scan()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

/// Two partitions, three files, two appends: a1 (2 rows) + b1 (1 row), then a2 (3 rows).
async fn three_files(fx: &Fixture, table: Table) -> (Table, [DataFile; 3]) {
    let a1 = fx.write_file(
        &table,
        CELL_A,
        2020,
        &["a1-0", "a1-1"],
        "part_000001_aaaa0001.parquet",
    );
    let b1 = fx.write_file(
        &table,
        CELL_B,
        2021,
        &["b1-0"],
        "part_000001_bbbb0001.parquet",
    );
    let a2 = fx.write_file(
        &table,
        CELL_A,
        2020,
        &["a2-0", "a2-1", "a2-2"],
        "part_000002_aaaa0002.parquet",
    );
    let table = fx
        .catalog
        .append(&table, vec![a1.clone(), b1.clone()], HashMap::new())
        .await
        .unwrap();
    let table = fx
        .catalog
        .append(&table, vec![a2.clone()], HashMap::new())
        .await
        .unwrap();
    (table, [a1, b1, a2])
}

/// `catalog.replace_files` of the paths `removed` by the one file `added`, with no extra
/// snapshot properties.
async fn replace(
    fx: &Fixture,
    table: &Table,
    removed: &[&str],
    added: &DataFile,
) -> earthcatalog::Result<Table> {
    let removed: Vec<String> = removed.iter().map(|p| p.to_string()).collect();
    fx.catalog
        .replace_files(table, &removed, vec![added.clone()], HashMap::new())
        .await
}

/// Write `name` holding all five rows of cell A / 2020 and replace `removed` with it.
async fn merge_cell_a(
    fx: &Fixture,
    table: &Table,
    removed: &[&DataFile],
    name: &str,
    props: HashMap<String, String>,
) -> (Table, DataFile) {
    let merged = fx.write_file(
        table,
        CELL_A,
        2020,
        &["a1-0", "a1-1", "a2-0", "a2-1", "a2-2"],
        name,
    );
    let removed: Vec<String> = removed.iter().map(|f| f.file_path().to_string()).collect();
    let after = fx
        .catalog
        .replace_files(table, &removed, vec![merged.clone()], props)
        .await
        .unwrap();
    (after, merged)
}

fn summary_value(table: &Table, key: &str) -> Option<String> {
    table
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties
        .get(key)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_table_has_no_current_or_historical_files() {
    let (fx, table) = Fixture::new().await;
    assert!(fx.catalog.current_files(&table).await.unwrap().is_empty());
    assert!(
        fx.catalog
            .historical_paths(&table, &|_| true)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_merges_two_files_in_one_replace_snapshot() {
    let (fx, table) = Fixture::new().await;
    let (before, [a1, b1, a2]) = three_files(&fx, table).await;
    let prev = before.metadata().current_snapshot().unwrap().clone();
    let first_id = prev.parent_snapshot_id().unwrap();
    assert_eq!(
        live_paths(&fx.catalog, &before).await,
        BTreeSet::from([
            a1.file_path().to_string(),
            b1.file_path().to_string(),
            a2.file_path().to_string()
        ])
    );

    let (after, merged) = merge_cell_a(
        &fx,
        &before,
        &[&a1, &a2],
        "compacted_0000cafe.parquet",
        HashMap::from([("earthcatalog.run".to_string(), "compact-1".to_string())]),
    )
    .await;

    // One new snapshot: replace, child of the previous one, next sequence number.
    let meta = after.metadata();
    assert_eq!(meta.snapshots().len(), 3);
    let snap = meta.current_snapshot().unwrap();
    assert_eq!(snap.summary().operation, Operation::Replace);
    assert_eq!(snap.parent_snapshot_id(), Some(prev.snapshot_id()));
    assert_eq!(snap.sequence_number(), prev.sequence_number() + 1);
    assert_eq!(meta.last_sequence_number(), snap.sequence_number());
    assert!(meta.snapshot_by_id(first_id).is_some());
    assert!(meta.snapshot_by_id(prev.snapshot_id()).is_some());
    assert_eq!(
        meta.snapshot_for_ref("main").unwrap().snapshot_id(),
        snap.snapshot_id()
    );
    assert_eq!(
        meta.history().last().unwrap().snapshot_id,
        snap.snapshot_id()
    );
    assert_eq!(meta.history().len(), 3);
    assert_eq!(
        meta.metadata_log().last().unwrap().metadata_file,
        before.metadata_location().unwrap()
    );
    // The new metadata file is the next version after the previous one.
    let version = |loc: &str| -> u32 {
        let name = loc.rsplit('/').next().unwrap();
        name[..name.find('-').unwrap()].parse().unwrap()
    };
    assert_eq!(
        version(after.metadata_location().unwrap()),
        version(before.metadata_location().unwrap()) + 1
    );

    // Summary counts.
    for (key, value) in [
        ("added-data-files", "1"),
        ("deleted-data-files", "2"),
        ("added-records", "5"),
        ("deleted-records", "5"),
        ("total-data-files", "2"),
        ("total-records", "6"),
        ("total-delete-files", "0"),
        ("earthcatalog.run", "compact-1"),
    ] {
        assert_eq!(summary_value(&after, key).as_deref(), Some(value), "{key}");
    }
    let size = merged.file_size_in_bytes() + b1.file_size_in_bytes();
    assert_eq!(
        summary_value(&after, "total-files-size"),
        Some(size.to_string())
    );

    // Schema, spec, sort order and properties unchanged.
    let old = before.metadata();
    assert_eq!(meta.current_schema(), old.current_schema());
    assert_eq!(meta.current_schema_id(), old.current_schema_id());
    assert_eq!(meta.default_partition_spec(), old.default_partition_spec());
    assert_eq!(meta.default_sort_order(), old.default_sort_order());
    assert_eq!(meta.properties(), old.properties());
    assert_eq!(meta.uuid(), old.uuid());

    // Live files: the merged file (new snapshot, new sequence number) and b1 (untouched).
    let current = fx.catalog.current_files(&after).await.unwrap();
    assert_eq!(current.len(), 2);
    let m = current
        .iter()
        .find(|f| f.data_file.file_path() == merged.file_path())
        .unwrap();
    assert_eq!(m.data_file.record_count(), 5);
    assert_eq!(m.snapshot_id, Some(snap.snapshot_id()));
    assert_eq!(m.sequence_number, Some(snap.sequence_number()));
    let b = current
        .iter()
        .find(|f| f.data_file.file_path() == b1.file_path())
        .unwrap();
    assert_eq!(b.snapshot_id, Some(first_id));
    assert_eq!(b.sequence_number, Some(1));
    assert_eq!(b.data_file, b1);

    // iceberg-rust scan sees the same two files and all six rows.
    let expected = BTreeSet::from([merged.file_path().to_string(), b1.file_path().to_string()]);
    assert_eq!(planned_paths(&after).await, expected);
    assert_eq!(scanned_rows(&after).await, 6);
    // The previous snapshot still reads the old three files.
    let old_scan: BTreeSet<String> = after
        .scan()
        .snapshot_id(prev.snapshot_id())
        .build()
        .unwrap()
        .plan_files()
        .await
        .unwrap()
        .map_ok(|t| t.data_file_path().to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(old_scan.len(), 3);

    // History still knows the replaced files.
    let hist = fx
        .catalog
        .historical_paths(&after, &|_| true)
        .await
        .unwrap();
    for f in [&a1, &a2, &b1, &merged] {
        assert!(hist.contains(f.file_path()), "{}", f.file_path());
    }
    assert_eq!(hist.len(), 4);

    // PyIceberg agrees.
    let script = format!(
        r#"
import json
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("earthcatalog", uri="sqlite:///{db}", warehouse="file://{wh}")
t = cat.load_table("earthcatalog.stac_items")
snap = t.current_snapshot()
print(json.dumps({{
  "rows": t.scan().to_arrow().num_rows,
  "ops": [s.summary.operation.value for s in sorted(t.snapshots(), key=lambda s: s.sequence_number)],
  "files": sorted(f.file.file_path for f in t.scan().plan_files()),
  "parent": snap.parent_snapshot_id,
  "id": snap.snapshot_id,
  "seq": snap.sequence_number,
  "total": snap.summary["total-records"],
  "old_rows": t.scan(snapshot_id={prev_id}).to_arrow().num_rows,
  "props": {{k: v for k, v in t.properties.items() if k.startswith("earthcatalog")}},
}}))
"#,
        db = fx.db().display(),
        wh = fx.warehouse().display(),
        prev_id = prev.snapshot_id(),
    );
    let out: serde_json::Value = serde_json::from_str(python(&script).trim()).unwrap();
    assert_eq!(out["rows"], 6);
    assert_eq!(out["old_rows"], 6);
    assert_eq!(
        out["ops"],
        serde_json::json!(["append", "append", "replace"])
    );
    let files: BTreeSet<String> = serde_json::from_value(out["files"].clone()).unwrap();
    assert_eq!(files, expected);
    assert_eq!(out["parent"], prev.snapshot_id());
    assert_eq!(out["id"], snap.snapshot_id());
    assert_eq!(out["seq"], snap.sequence_number());
    assert_eq!(out["total"], "6");
    assert_eq!(out["props"]["earthcatalog.grid.resolution"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_carries_untouched_manifests_and_rewrites_touched_ones() {
    let (fx, table) = Fixture::new().await;
    let (table, [a1, b1, a2]) = three_files(&fx, table).await;
    let c1 = fx.write_file(
        &table,
        CELL_C,
        2022,
        &["c1-0"],
        "part_000003_cccc0001.parquet",
    );
    let before = fx
        .catalog
        .append(&table, vec![c1.clone()], HashMap::new())
        .await
        .unwrap();
    let prev = before.metadata().current_snapshot().unwrap().clone();
    let prev_manifests = before.manifest_list_reader(&prev).load().await.unwrap();
    let c1_manifest = prev_manifests
        .entries()
        .iter()
        .find(|m| m.added_snapshot_id == prev.snapshot_id())
        .unwrap()
        .manifest_path
        .clone();

    let (after, merged) = merge_cell_a(
        &fx,
        &before,
        &[&a1, &a2],
        "compacted_0000beef.parquet",
        HashMap::new(),
    )
    .await;
    let snap = after.metadata().current_snapshot().unwrap().clone();
    let list = after.manifest_list_reader(&snap).load().await.unwrap();
    // added + two rewritten (a1+b1, a2) + carried (c1).
    assert_eq!(list.entries().len(), 4);
    let carried = list
        .entries()
        .iter()
        .find(|m| m.manifest_path == c1_manifest)
        .expect("untouched manifest carried over");
    assert_eq!(carried.added_snapshot_id, prev.snapshot_id());
    assert_eq!(carried.sequence_number, prev.sequence_number());

    let mut statuses: Vec<(String, ManifestStatus, Option<i64>, Option<i64>)> = Vec::new();
    for mf in list.entries() {
        let manifest = mf.load_manifest(after.file_io()).await.unwrap();
        for e in manifest.entries() {
            statuses.push((
                e.file_path().to_string(),
                e.status(),
                e.snapshot_id(),
                e.sequence_number(),
            ));
        }
    }
    statuses.sort_by(|a, b| a.0.cmp(&b.0));
    let first = after
        .metadata()
        .snapshots()
        .find(|s| s.sequence_number() == 1)
        .unwrap()
        .snapshot_id();
    let expect = |f: &DataFile, s: ManifestStatus, id: i64, seq: i64| {
        (f.file_path().to_string(), s, Some(id), Some(seq))
    };
    let mut wanted = vec![
        expect(&a1, ManifestStatus::Deleted, snap.snapshot_id(), 1),
        expect(&b1, ManifestStatus::Existing, first, 1),
        expect(&a2, ManifestStatus::Deleted, snap.snapshot_id(), 2),
        expect(&c1, ManifestStatus::Added, prev.snapshot_id(), 3),
        expect(&merged, ManifestStatus::Added, snap.snapshot_id(), 4),
    ];
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(statuses, wanted);

    assert_eq!(
        planned_paths(&after).await,
        BTreeSet::from([
            merged.file_path().to_string(),
            b1.file_path().to_string(),
            c1.file_path().to_string()
        ])
    );
    assert_eq!(scanned_rows(&after).await, 7);
    assert_eq!(
        summary_value(&after, "total-data-files").as_deref(),
        Some("3")
    );
    assert_eq!(summary_value(&after, "total-records").as_deref(), Some("7"));

    // A second replace on top of the first one (rewritten manifests become inputs).
    let (again, merged2) = merge_cell_a(
        &fx,
        &after,
        &[&merged],
        "compacted_0000f00d.parquet",
        HashMap::new(),
    )
    .await;
    assert_eq!(again.metadata().snapshots().len(), 5);
    assert_eq!(
        live_paths(&fx.catalog, &again).await,
        BTreeSet::from([
            merged2.file_path().to_string(),
            b1.file_path().to_string(),
            c1.file_path().to_string()
        ])
    );
    assert_eq!(scanned_rows(&again).await, 7);
    let out = python(&format!(
        r#"
from pyiceberg.catalog.sql import SqlCatalog
t = SqlCatalog("earthcatalog", uri="sqlite:///{db}", warehouse="file://{wh}").load_table("earthcatalog.stac_items")
print(t.scan().to_arrow().num_rows, len(list(t.scan().plan_files())), ",".join(s.summary.operation.value for s in sorted(t.snapshots(), key=lambda s: s.sequence_number)))
"#,
        db = fx.db().display(),
        wh = fx.warehouse().display(),
    ));
    assert_eq!(out.trim(), "7 3 append,append,append,replace,replace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_path_that_is_not_live_fails_and_changes_nothing() {
    let (fx, table) = Fixture::new().await;
    let (table, [a1, b1, a2]) = three_files(&fx, table).await;
    let merged = fx.write_file(&table, CELL_A, 2020, &["x"], "compacted_00000001.parquet");
    let files_before = listing(&fx.metadata_dir());
    let location_before = table.metadata_location().unwrap().to_string();

    let missing = "file:///nowhere/grid_partition=x/year=2020/part_000009_00000000.parquet";
    let err = replace(&fx, &table, &[a1.file_path(), missing], &merged)
        .await
        .unwrap_err();
    match &err {
        Error::NotLive { paths, .. } => assert_eq!(paths, &vec![missing.to_string()]),
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains(missing), "{err}");
    let reloaded = fx.catalog.load_table().await.unwrap().unwrap();
    assert_eq!(reloaded.metadata_location().unwrap(), location_before);
    assert_eq!(listing(&fx.metadata_dir()), files_before);

    // Replace for real, then a1 (no longer live) cannot be replaced again.
    let after = replace(&fx, &table, &[a1.file_path(), a2.file_path()], &merged)
        .await
        .unwrap();
    let files_after = listing(&fx.metadata_dir());
    let other = fx.write_file(&after, CELL_A, 2020, &["y"], "compacted_00000002.parquet");
    let err = replace(&fx, &after, &[a1.file_path()], &other)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotLive { .. }), "{err}");
    assert_eq!(listing(&fx.metadata_dir()), files_after);
    // Adding a file that is already live is refused too (checked whenever the manifests are
    // read, i.e. when something is removed; plain appends skip the check, like iceberg's
    // fast_append without duplicate checks).
    let err = replace(&fx, &after, &[merged.file_path()], &merged)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    // ... also when the live file added is not among the removed ones.
    let err = replace(&fx, &after, &[b1.file_path()], &merged)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    let reloaded = fx.catalog.load_table().await.unwrap().unwrap();
    assert_eq!(reloaded.metadata_location(), after.metadata_location());
    assert_eq!(reloaded.metadata().snapshots().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commit_turns_replace_into_a_conflict() {
    let (fx, table) = Fixture::new().await;
    let (table, [a1, b1, a2]) = three_files(&fx, table).await;
    // A second handle on the same catalog commits between our load and our replace.
    let other = Catalog::open(fx.db().to_str().unwrap(), fx.warehouse().to_str().unwrap())
        .await
        .unwrap();
    let other_table = other.load_table().await.unwrap().unwrap();
    let c1 = fx.write_file(
        &table,
        CELL_C,
        2022,
        &["c1-0"],
        "part_000003_cccc0001.parquet",
    );
    let theirs = other
        .append(&other_table, vec![c1.clone()], HashMap::new())
        .await
        .unwrap();
    let files_before = listing(&fx.metadata_dir());

    let merged = fx.write_file(&table, CELL_A, 2020, &["m"], "compacted_00000003.parquet");
    let err = replace(&fx, &table, &[a1.file_path(), a2.file_path()], &merged)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CommitConflict { .. }), "{err}");
    assert!(err.is_retryable());

    // The catalog is exactly what the other writer left; our attempt left no metadata files.
    let reloaded = fx.catalog.load_table().await.unwrap().unwrap();
    assert_eq!(reloaded.metadata_location(), theirs.metadata_location());
    assert_eq!(reloaded.metadata().snapshots().len(), 3);
    assert_eq!(
        reloaded
            .metadata()
            .current_snapshot()
            .unwrap()
            .summary()
            .operation,
        Operation::Append
    );
    assert_eq!(
        live_paths(&fx.catalog, &reloaded).await,
        BTreeSet::from([
            a1.file_path().to_string(),
            b1.file_path().to_string(),
            a2.file_path().to_string(),
            c1.file_path().to_string()
        ])
    );
    assert_eq!(listing(&fx.metadata_dir()), files_before);

    // Retrying on the fresh table works.
    let merged = fx.write_file(
        &reloaded,
        CELL_A,
        2020,
        &["m2"],
        "compacted_00000004.parquet",
    );
    let after = replace(&fx, &reloaded, &[a1.file_path(), a2.file_path()], &merged)
        .await
        .unwrap();
    assert_eq!(
        live_paths(&fx.catalog, &after).await,
        BTreeSet::from([
            merged.file_path().to_string(),
            b1.file_path().to_string(),
            c1.file_path().to_string()
        ])
    );
    // The other handle sees the replace too.
    let seen = other.load_table().await.unwrap().unwrap();
    assert_eq!(seen.metadata_location(), after.metadata_location());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_removes_every_spelling_of_a_file_registered_twice() {
    // One file registered as its file:// URL and as its local path, and another file of the
    // same bucket: compaction must remove both entries of the first (it deletes the file).
    let (fx, table) = Fixture::new().await;
    let name = "part_000001_aaaa0001.parquet";
    let url = fx.write_file(&table, CELL_A, 2020, &["a1-0"], name);
    let plain = fx.write_file_as(&table, CELL_A, 2020, &["a1-0"], name, true);
    let other = fx.write_file(
        &table,
        CELL_A,
        2020,
        &["a2-0"],
        "part_000002_aaaa0002.parquet",
    );
    assert_ne!(url.file_path(), plain.file_path());
    let table = fx
        .catalog
        .append(&table, vec![url, other], HashMap::new())
        .await
        .unwrap();
    let table = fx
        .catalog
        .append(&table, vec![plain], HashMap::new())
        .await
        .unwrap();
    assert_eq!(live_paths(&fx.catalog, &table).await.len(), 3);

    let opts = earthcatalog::maintenance::CompactOptions {
        warehouse: fx.warehouse().to_str().unwrap().to_string(),
        catalog: fx.db().to_str().unwrap().to_string(),
        ..Default::default()
    };
    let m = earthcatalog::maintenance::compact_warehouse(&opts, &earthcatalog::report::NoReporter)
        .await
        .unwrap();
    let after = fx.catalog.load_table().await.unwrap().unwrap();
    let live = live_paths(&fx.catalog, &after).await;
    assert_eq!(live.len(), 1, "{live:?}");
    for p in &live {
        let local = p.trim_start_matches("file://");
        assert!(Path::new(local).exists(), "live file {p} was deleted");
    }
    assert_eq!(scanned_rows(&after).await, 2);
    assert_eq!((m.files_before, m.files_after, m.rows_after), (3, 1, 2));
}
