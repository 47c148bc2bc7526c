#!/usr/bin/env bash
# Query benchmark on a large warehouse (≥ 5,000 files): `files` pruning for a point + 3-year
# range, and `search` for a point, a ~10-cell region and a region + property filter. Prints
# median latency of 5 runs, files and rows touched; then the same point query through
# PyIceberg plan_files + pyarrow reads for comparison.
#
#   bench/query.sh [WAREHOUSE_DIR=/var/tmp/ec-bench/run-100000-res2]
# (bench/ingest.sh 100000 builds that warehouse: 10,138 files at H3 res 2.)
set -euo pipefail
DIR="${1:-/var/tmp/ec-bench/run-100000-res2}"
BIN="${EARTHCATALOG_BIN:-${CARGO_TARGET_DIR:-target}/release/earthcatalog}"
CAT="$DIR/catalog.db"; WH="$DIR/warehouse"
[ -f "$CAT" ] || { echo "no catalog at $CAT (run bench/ingest.sh 100000 first)" >&2; exit 1; }

source "$(dirname "$0")/lib.sh"

POINT="-147.0,61.0"; REGION="-150,60,-144,63"
FILTER="percent_valid_pixels > 50 AND platform IN ('LC08','S2A')"
echo "warehouse: $("$BIN" info --catalog "$CAT" --json | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["files"], "files,", m["rows"], "rows")')"
printf '%-34s %8s %s\n' query median_ms detail
n=$("$BIN" files --catalog "$CAT" --point "$POINT" --start 2018-01-01 --end 2020-12-31 | wc -l)
printf '%-34s %8s %s\n' "files point 2018–2020" "$(median_ms "$BIN" files --catalog "$CAT" --point "$POINT" --start 2018-01-01 --end 2020-12-31)" "$n files"
for q in "point 2018–2020|--point $POINT --datetime 2018-01-01T00:00:00Z/2020-12-31T23:59:59Z" \
         "point (all years)|--point $POINT" "region (~10 cells)|--bbox $REGION" \
         "region + filter|--bbox $REGION --filter"; do
  name="${q%%|*}"; args=(${q#*|})
  if [[ "$name" == *filter* ]]; then args+=("$FILTER"); fi
  stats=$("$BIN" search --catalog "$CAT" "${args[@]}" --format ndjson --stats 2>&1 >/dev/null | tail -1)
  printf '%-34s %8s %s\n' "search $name" "$(median_ms "$BIN" search --catalog "$CAT" "${args[@]}" --format ndjson)" "$stats"
done

python3 - "$CAT" "$WH" <<'PY'
import sys, time, h3
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import And, In, GreaterThanOrEqual, LessThanOrEqual
cat, wh = sys.argv[1], sys.argv[2]
def run():
    t = SqlCatalog("earthcatalog", uri=f"sqlite:///{cat}", warehouse=f"file://{wh}").load_table("earthcatalog.stac_items")
    cell = h3.latlng_to_cell(61.0, -147.0, 2)
    expr = And(In("grid_partition", [cell]), And(GreaterThanOrEqual("datetime", "2018-01-01T00:00:00+00:00"), LessThanOrEqual("datetime", "2020-12-31T23:59:59+00:00")))
    files = [f.file.file_path.replace("file://", "") for f in t.scan(row_filter=expr).plan_files()]
    rows = sum(pq.read_table(f).num_rows for f in files)
    return len(files), rows
times = []
for _ in range(11):
    s = time.perf_counter(); n, rows = run(); times.append((time.perf_counter() - s) * 1000)
print(f"{'pyiceberg plan_files + pyarrow':<34} {sorted(times)[5]:>8.0f} {n} files, {rows} rows")
PY
