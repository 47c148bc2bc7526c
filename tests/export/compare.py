"""Read an `earthcatalog export` back with rustac (stac-geoparquet) and as NDJSON, and compare
every item with the same items from `earthcatalog search --format ndjson`.

    python compare.py SEARCH_NDJSON EXPORT_PARQUET EXPORT_NDJSON

Prints one JSON object: counts, the ids that differ (with the first difference of each), and
the row groups of the Parquet file. Equal means equal as STAC: numbers by value (a column of
mixed integers and fractions is read back as floats), timestamps as instants, a null
geometry as rustac returns it (an empty geometry).
"""
import asyncio
import json
import sys
from datetime import datetime

import pyarrow.parquet as pq
import rustac

search_path, parquet_path, ndjson_path = sys.argv[1:4]


def load_lines(path):
    with open(path) as f:
        return {i["id"]: i for i in (json.loads(line) for line in f if line.strip())}


def instant(v):
    if isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] == "T":
        try:
            return datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return v
    return v


def norm(v, path=""):
    if isinstance(v, dict):
        if v.get("type") in ("MultiPolygon", "Polygon", "Point") and v.get("coordinates") == []:
            return None
        out = {k: norm(x, f"{path}.{k}") for k, x in v.items()}
        return {k: x for k, x in out.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [norm(x, path) for x in v]
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    return instant(v)


def first_difference(a, b, path="item"):
    if type(a) is not type(b):
        return f"{path}: {a!r} vs {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: missing on one side"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} elements"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def compare(reference, got):
    diffs = {}
    for id_, item in reference.items():
        if id_ not in got:
            diffs[id_] = "missing"
            continue
        d = first_difference(norm(item), norm(got[id_]))
        if d:
            diffs[id_] = d
    for id_ in got:
        if id_ not in reference:
            diffs[id_] = "extra"
    return diffs


async def read_parquet():
    return await rustac.read(parquet_path)


reference = load_lines(search_path)
parquet = {i["id"]: i for i in asyncio.run(read_parquet())["features"]}
ndjson = load_lines(ndjson_path)
meta = pq.ParquetFile(parquet_path).metadata
geo = json.loads(meta.metadata[b"geo"])
print(json.dumps({
    "items": len(reference),
    "parquet_items": len(parquet),
    "ndjson_items": len(ndjson),
    "parquet_diffs": dict(list(compare(reference, parquet).items())[:5]),
    "parquet_diff_count": len(compare(reference, parquet)),
    "ndjson_diff_count": len(compare(reference, ndjson)),
    "row_groups": meta.num_row_groups,
    "covering": geo["columns"]["geometry"].get("covering"),
    "stac_geoparquet": json.loads(meta.metadata[b"stac-geoparquet"]),
}))
