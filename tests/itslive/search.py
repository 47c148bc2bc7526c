"""The `itslive` client's serverless search (DuckDB engine) over a warehouse earthcatalog wrote
in the `grid/level/tile` layout, against a brute-force scan of the source items.

    python search.py ITEMS_DIR WAREHOUSE

Prints one JSON object: the brute-force hrefs, the client's, and how many of the matching
items have only a start/end interval (no `datetime`). The client prunes by the `tile=` and
`year=` directories (the interval's midpoint year, widened by one year each side) and then
filters with SQL: `ST_Intersects` (planar), start_datetime/end_datetime overlap, and
`percent_valid_pixels >= 1`; the brute force applies the same rules to every item file.
"""
import json
import pathlib
import sys
from datetime import datetime, timezone

import itslive
from shapely.geometry import box, shape

items_dir, warehouse = sys.argv[1], sys.argv[2]
BBOX = [-55.0, 60.0, -20.0, 84.0]
START, END = "2015-01-01", "2020-12-31"
lo = datetime(2015, 1, 1, tzinfo=timezone.utc)
hi = datetime(2020, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
region = box(*BBOX)


def ts(v):
    if not isinstance(v, str):
        return None
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


expected, interval_only = set(), 0
for p in pathlib.Path(items_dir).rglob("*.json"):
    item = json.loads(p.read_text())
    props = item.get("properties", {})
    s, e = ts(props.get("start_datetime")), ts(props.get("end_datetime"))
    pvp = props.get("percent_valid_pixels")
    href = item.get("assets", {}).get("data", {}).get("href", "")
    g = item.get("geometry")
    try:
        hit = bool(g) and shape(g).intersects(region)
    except Exception:
        hit = False
    if hit and s and e and s <= hi and e >= lo and pvp is not None and pvp >= 1 \
            and href.endswith(".nc"):
        expected.add(href)
        if props.get("datetime") is None:
            interval_only += 1

found = itslive.search(bbox=BBOX, start=START, end=END, base_catalog_href=warehouse)
print(json.dumps({
    "expected": sorted(expected),
    "found": sorted(found),
    "interval_only": interval_only,
}))
