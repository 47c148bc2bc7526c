"""Build a warehouse and catalog with the Python earthcatalog tool (PyPI 0.6.1), then print JSON.

Run with the interpreter of the venv holding the Python tool (its import name is the same as
ours, so it cannot run in our venv). Usage:

    build_warehouse.py ROOT ITEMS_DIR

Writes ROOT/warehouse (the tool's layout and file writer: fan_out, group_by_partition,
write_geoparquet_s3 into an obstore LocalStore) and ROOT/earthcatalog.db (PyIceberg SqlCatalog,
registered with the tool's get_or_create and add_files), in three overlapping batches so
buckets hold several files and some ids several versions. Items the tool cannot partition are
left out, as its ingest does, and ``percent_valid_pixels`` and ``date_dt`` are rounded to whole
numbers: the tool writes a column of whole floats as int32 and of fractional ones as double, and
its compaction then fails on buckets whose files disagree (see `docs/decisions.md`), which is not
what this peer is for.
"""

import json
import pathlib
import sys
import uuid

from obstore.store import LocalStore

from earthcatalog.catalog import _open_sqlite, get_or_create
from earthcatalog.config import GridConfig
from earthcatalog.grids import build_partitioner
from earthcatalog.transform import fan_out, group_by_partition, write_geoparquet_s3

root = pathlib.Path(sys.argv[1]).resolve()
items_dir = pathlib.Path(sys.argv[2])
(root / "warehouse").mkdir(parents=True, exist_ok=True)
warehouse = f"file://{root}/warehouse"
grid = GridConfig(type="h3", resolution=1)
catalog = _open_sqlite(str(root / "earthcatalog.db"), warehouse)
table = get_or_create(catalog, grid)
partitioner = build_partitioner(grid)
store = LocalStore(str(root / "warehouse"))

items = []
for path in sorted(p for p in items_dir.rglob("*") if p.is_file()):
    item = json.loads(path.read_text())
    # The tool writes only items with a datetime and a geometry it can read.
    props = item.get("properties", {})
    if props.get("datetime") and item.get("geometry"):
        for name in ("percent_valid_pixels", "date_dt"):
            if isinstance(props.get(name), float):
                props[name] = round(props[name])
        items.append(item)
n = len(items)
batches = [items[: n // 2], items[n // 3 : (5 * n) // 6], items[(2 * n) // 3 :]]
files = 0
for number, batch in enumerate(batches):
    paths = []
    for (cell, year), group in group_by_partition(fan_out(batch, partitioner)).items():
        key = f"grid_partition={cell}/year={year if year is not None else 'unknown'}/part_{number:06d}_{uuid.uuid4().hex[:8]}.parquet"
        rows, _ = write_geoparquet_s3(group, store, key)
        if rows:
            paths.append(f"{warehouse}/{key}")
    table.add_files(paths)
    files += len(paths)
print(json.dumps({"items": len(items), "files": files}))
