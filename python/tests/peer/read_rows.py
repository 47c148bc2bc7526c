"""Print the (id, grid_partition, year) rows of a catalog's table as JSON, read with PyIceberg.

Run with the peer venv's interpreter (PyIceberg is not a dependency of our package). Usage:

    read_rows.py CATALOG_DB WAREHOUSE_DIR
"""

import json
import sys

from pyiceberg.catalog.sql import SqlCatalog

db, warehouse = sys.argv[1], sys.argv[2]
catalog = SqlCatalog("earthcatalog", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
table = catalog.load_table("earthcatalog.stac_items")
data = table.scan(selected_fields=("id", "grid_partition", "datetime")).to_arrow()
rows = sorted(
    [i, c, None if d is None else d.year]
    for i, c, d in zip(
        data.column("id").to_pylist(),
        data.column("grid_partition").to_pylist(),
        data.column("datetime").to_pylist(),
    )
)
print(json.dumps({"rows": rows, "files": len(list(table.scan().plan_files()))}))
