//! Interop with the Python ecosystem: PyIceberg reads what we write, and we append to a
//! catalog PyIceberg created.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::BTreeMap;

use common::*;
use earthcatalog::pipeline::ingest;
use earthcatalog::report::NoReporter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyiceberg_reads_our_catalog_prunes_by_cell_and_counts_rows() {
    let ds = Dataset::synth(200, 21).await;
    let opts = ds.options(2);
    let m = ingest(&opts, &NoReporter).await.unwrap();
    // Our view: files per cell.
    let wh = ds.dir.path().join("warehouse");
    let mut by_cell: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in data_files(&wh) {
        let cell = f
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()["grid_partition=".len()..]
            .to_string();
        by_cell
            .entry(cell)
            .or_default()
            .push(f.to_string_lossy().into_owned());
    }
    let cells: Vec<&String> = by_cell.keys().take(3).collect();
    let mut expected: Vec<String> = cells.iter().flat_map(|c| by_cell[*c].clone()).collect();
    expected.sort();
    let script = format!(
        r#"
import json, pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import In
cat = SqlCatalog("earthcatalog", uri="sqlite:///{db}", warehouse="file://{wh}")
assert ("earthcatalog",) in cat.list_namespaces()
t = cat.load_table("earthcatalog.stac_items")
files = sorted(f.file.file_path.replace("file://", "") for f in t.scan(row_filter=In("grid_partition", {cells:?})).plan_files())
tbl = t.scan().to_arrow()
geo = all(b"geo" in pq.read_metadata(f.file.file_path.replace("file://", "")).metadata for f in t.scan().plan_files())
ids = tbl.column("id").to_pylist()
print(json.dumps({{"files": files, "rows": tbl.num_rows, "geo": geo, "distinct": len(set(ids)),
  "pvp": str(tbl.schema.field("percent_valid_pixels").type), "dt": str(tbl.schema.field("datetime").type),
  "spec": [f.field_id for f in t.spec().fields], "props": {{k: v for k, v in t.properties.items() if k.startswith("earthcatalog")}}}}))
"#,
        db = opts.catalog,
        wh = wh.display(),
        cells = cells,
    );
    let out: serde_json::Value = serde_json::from_str(python(&script).trim()).unwrap();
    let files: Vec<String> = serde_json::from_value(out["files"].clone()).unwrap();
    assert_eq!(
        files, expected,
        "plan_files with In(grid_partition) must return exactly those files"
    );
    assert_eq!(out["rows"], m.rows);
    assert_eq!(out["distinct"], ds.item_ids().len());
    assert_eq!(out["geo"], true);
    assert_eq!(out["pvp"], "int64");
    assert_eq!(out["dt"], "timestamp[us, tz=UTC]");
    assert_eq!(out["spec"], serde_json::json!([1000, 1001]));
    assert_eq!(out["props"]["earthcatalog.grid.resolution"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_append_to_a_catalog_created_by_pyiceberg() {
    let ds = Dataset::synth(50, 22).await;
    let opts = ds.options(1);
    std::fs::create_dir_all(ds.path("warehouse")).unwrap();
    // PyIceberg creates the namespace and a table with the Python tool's schema and spec.
    let script = pyiceberg_create_table(
        &opts.catalog,
        &ds.path("warehouse"),
        r#"{"earthcatalog.grid.type": "h3", "earthcatalog.grid.resolution": "1"}"#,
    ) + "print('ok')\n";
    assert_eq!(python(&script).trim(), "ok");
    let m = ingest(&opts, &NoReporter).await.unwrap();
    assert_eq!(m.failed, 0);
    let check = format!(
        r#"
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("earthcatalog", uri="sqlite:///{db}", warehouse="file://{wh}")
t = cat.load_table("earthcatalog.stac_items")
print(t.scan().to_arrow().num_rows, len(t.snapshots()), t.properties.get("earthcatalog.grid.resolution"))
"#,
        db = opts.catalog,
        wh = ds.path("warehouse")
    );
    assert_eq!(python(&check).trim(), format!("{} 1 1", m.rows));
}
