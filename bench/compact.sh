#!/usr/bin/env bash
# Compaction benchmark. Three warehouse shapes, then `compact` is timed: files before/after,
# rows, duplicates removed, seconds, rows/s per core, peak RSS.
#
#   bench/compact.sh [N=10000] [K=5] [WORKDIR=/var/tmp/ec-bench]
#       K overlapping ingests of the same N items (each bucket gets K part files and K copies
#       of each row);
#   bench/compact.sh production [WORKDIR=/var/tmp/ec-bench]
#       the production shape: one 100,000-item backfill (one ingest) plus seven daily ingests
#       of 2,000 new items each (~9,000 files, ~185,000 rows);
#   bench/compact.sh live-files FILES [WORKDIR=/var/tmp/ec-bench]
#       about FILES live files (ingests of 2,000 items in chunks of 100: many small files), to
#       show that memory follows the buckets in flight, not the table's file count.
#
# BOUND=1 also runs `examples/merge_bound.rs` (build it: cargo build --release --example
# merge_bound) on the same warehouse: what reading, footer parsing, zstd decompression and
# compression, writing and deleting alone cost (object_store through the tokio runtime as
# `compact` does, then object_store outside any runtime), a lower bound for any merge.
#
# PYTHON_COMPARE=1 also restores the same warehouse (same paths: the catalog stores absolute
# file:// URLs) and times the Python tool's `compact_warehouse` on it (PyPI earthcatalog,
# see .ci/run for the install); it reports the time even when the tool fails.
#
# KEEP_ORIG=1 keeps the input warehouse as <OUT>.orig (bench/python.sh compact restores it).
set -euo pipefail
SHAPE=overlap
case "${1:-}" in
  production) SHAPE=production; shift ;;
  live-files) SHAPE=live-files; FILES="${2:?live-files needs a file count}"; shift 2 ;;
esac
N="${1:-10000}"
K="${2:-5}"
WORK="${3:-/var/tmp/ec-bench}"
[ "$SHAPE" = overlap ] || WORK="${1:-/var/tmp/ec-bench}"
BIN="${EARTHCATALOG_BIN:-${CARGO_TARGET_DIR:-target}/release/earthcatalog}"
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set EARTHCATALOG_BIN)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
mkdir -p "$WORK"

ingest() { # inventory, items root, warehouse dir, extra flags...
  local inv=$1 items=$2 out=$3; shift 3
  "$BIN" -q ingest --json --no-lock --resolution 1 --no-hash-index \
    --inventory "$inv" --items-root "$items" \
    --warehouse "$out/warehouse" --catalog "$out/catalog.db" "$@" > /dev/null
}

# inventory slice: header + rows FROM..TO (1-based) of a generated inventory
slice() { { head -1 "$1"; tail -n +2 "$1" | sed -n "$2,$3p"; } > "$4"; }

case "$SHAPE" in
  overlap)
    DATA="$WORK/data-$N"
    [ -f "$DATA/inventory.csv" ] || "$BIN" generate --out "$DATA" --count "$N" --seed 1 >/dev/null
    OUT="$WORK/compact-$N-x$K"
    rm -rf "$OUT"
    for i in $(seq 1 "$K"); do
      ingest "$DATA/inventory.csv" "$DATA/items" "$OUT"
    done
    ;;
  production)
    DATA="$WORK/data-114000"
    [ -f "$DATA/inventory.csv" ] || "$BIN" generate --out "$DATA" --count 114000 --seed 1 >/dev/null
    OUT="$WORK/compact-production"
    rm -rf "$OUT" && mkdir -p "$OUT"
    slice "$DATA/inventory.csv" 1 100000 "$OUT/backfill.csv"
    ingest "$OUT/backfill.csv" "$DATA/items" "$OUT"
    for day in 1 2 3 4 5 6 7; do
      from=$((100000 + (day - 1) * 2000 + 1))
      slice "$DATA/inventory.csv" "$from" $((from + 1999)) "$OUT/day$day.csv"
      ingest "$OUT/day$day.csv" "$DATA/items" "$OUT"
    done
    ;;
  live-files)
    DATA="$WORK/data-2000"
    [ -f "$DATA/inventory.csv" ] || "$BIN" generate --out "$DATA" --count 2000 --seed 1 >/dev/null
    OUT="$WORK/compact-files-$FILES"
    rm -rf "$OUT"
    ingest "$DATA/inventory.csv" "$DATA/items" "$OUT" --chunk-items 100
    PER=$(find "$OUT/warehouse" -name '*.parquet' -path '*year=*' | wc -l)
    for _ in $(seq 2 $(((FILES + PER - 1) / PER))); do
      ingest "$DATA/inventory.csv" "$DATA/items" "$OUT" --chunk-items 100
    done
    ;;
esac
rm -rf "$OUT.orig" && cp -a "$OUT" "$OUT.orig"
/usr/bin/time -f '%M %e %U %S' -o "$WORK/time.txt" \
  "$BIN" -q compact --json --warehouse "$OUT/warehouse" --catalog "$OUT/catalog.db" > "$WORK/compact.json"
read -r RSS_KB SECS USER SYS < "$WORK/time.txt"
python3 - "$WORK/compact.json" "$RSS_KB" "$SECS" "$USER" "$SYS" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
rss, secs, cpu = int(sys.argv[2]) / 1024, float(sys.argv[3]), float(sys.argv[4]) + float(sys.argv[5])
# Rows per CPU-second: the per-core rate, independent of other load on a shared machine.
print(f"files {m['files_before']} -> {m['files_after']}, rows {m['rows_before']} -> {m['rows_after']}, "
      f"duplicates removed {m['duplicates_removed']}, buckets {m['buckets_compacted']}, "
      f"{secs:.1f} s wall, {cpu:.1f} s CPU ({m['rows_before'] / cpu:,.0f} rows per CPU-second), "
      f"peak RSS {rss:.0f} MB")
PY

if [ "${BOUND:-0}" = 1 ]; then
  BOUND_BIN="$(dirname "$BIN")/examples/merge_bound"
  [ -x "$BOUND_BIN" ] || { echo "build first: cargo build --release --example merge_bound" >&2; exit 1; }
  for store in object_store inline; do
    echo -n "bound ($store): "
    STORE=$store "$BOUND_BIN" "$OUT.orig/warehouse" "$WORK/bound" | sed 's/^.*| CPU/CPU/'
  done
fi

if [ "${PYTHON_COMPARE:-0}" = 1 ]; then
  rm -rf "$OUT" && cp -a "$OUT.orig" "$OUT"
  python3 - "$OUT" <<'PY'
import contextlib, io, logging, sys, time
from earthcatalog.maintenance.compact import compact_warehouse
out = sys.argv[1]
logging.disable(logging.CRITICAL)
t, c = time.perf_counter(), time.process_time()
try:
    # The tool prints a line per bucket: keep it off the report.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        r = compact_warehouse(f"{out}/warehouse", f"{out}/catalog.db")
    status = f"ok {r}"
except Exception as e:  # the tool fails on some warehouses (`docs/decisions.md`)
    status = f"FAILED after the merge: {type(e).__name__}: {str(e)[:120]}"
print(f"python tool: {time.perf_counter() - t:.1f} s wall, {time.process_time() - c:.1f} s CPU, {status}")
PY
fi
[ "${KEEP_ORIG:-0}" = 1 ] || rm -rf "$OUT.orig"
