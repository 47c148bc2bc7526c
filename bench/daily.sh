#!/usr/bin/env bash
# Daily-loop benchmark: keys-only S3 Inventories of two "days" at production scale (manifest.json
# + gzipped CSV shards of ITS_LIVE-like keys; day 2 adds, changes and removes 0.1 % of the keys)
# and a hash index of day 1's ids, then times `delta`, `diff`, a no-op re-ingest and
# `index rebuild` (wall time and peak RSS of each, REPEAT runs).
#
#   bench/daily.sh [KEYS=43000000] [WORKDIR=/var/tmp/ec-daily] [REPEAT=3]
#
# SKIP_DAYS=1 skips the two-day part (delta, diff).
# PYTHON_COMPARE=N also runs the Python tool's daily_delta.py logic (its own functions, on local
# Parquet shards of N keys; see bench/daily_python.py) and ours on the same files.
set -euo pipefail
KEYS=${1:-43000000}
WORK=${2:-/var/tmp/ec-daily}
REPEAT=${3:-3}
BIN=${EARTHCATALOG_BIN:-target/release/earthcatalog}
mkdir -p "$WORK"

measure() { # label, command...
  local label=$1; shift
  local out
  # Exit 3 (finished, some items failed) is expected where generated broken items are fetched.
  out=$( { /usr/bin/time -f "%e %M %U %S" "$@" >/dev/null || [ $? = 3 ]; } 2>&1 | tail -1)
  echo "$label: $(echo "$out" | awk '{printf "%.1f s wall, %.1f s CPU, %.0f MB peak RSS", $1, $3+$4, $2/1024}')"
}

if [ -z "${SKIP_DAYS:-}" ]; then
gen="$WORK/gen-$KEYS"
# (The index must hold day 1's ids: an ingest against it with a table that does not hold them
# would rightly rebuild it from the table.)
if [ ! -f "$gen/summary.json" ] || [ "$(stat -c %s "$gen/index.parquet" 2>/dev/null || echo 0)" -lt 1000000 ]; then
  echo "generating $KEYS keys per day (134 CSV.gz shards) …" >&2
  rm -rf "$gen"
  "$BIN" generate-inventory --out "$gen" --keys "$KEYS" --shards 134 --churn 0.001 \
    > "$gen.json" && mkdir -p "$gen" && mv "$gen.json" "$gen/summary.json"
fi
day1="$gen/day1/manifest.json"
day2="$gen/day2/manifest.json"
index="$gen/index.parquet"
echo "inventories: $(du -sh "$gen/day1" | cut -f1) per day, index $(du -h "$index" | cut -f1)"

for i in $(seq "$REPEAT"); do
  rm -rf "$WORK/delta"
  measure "delta  ($KEYS keys, run $i)" "$BIN" -q delta --inventory "$day2" --hash-index "$index" \
    --delta-prefix "$WORK/delta" --date 2026-11-25 --force
  rm -f "$WORK/new.parquet" "$WORK/gone.parquet"
  measure "diff   (2 × $KEYS keys, --max-memory 1GB, run $i)" "$BIN" -q diff \
    --current "$day2" --previous "$day1" --out "$WORK/new.parquet" --removed "$WORK/gone.parquet" \
    --max-memory 1GB
done
fi

# index rebuild over a warehouse of ~1M rows (INDEX_ITEMS items at H3 res 2, ~2.8 rows each).
INDEX_ITEMS=${INDEX_ITEMS:-360000}
wh="$WORK/rebuild-$INDEX_ITEMS"
if [ ! -f "$wh/catalog.db" ]; then
  echo "building a $INDEX_ITEMS-item res-2 warehouse for index rebuild …" >&2
  rm -rf "$wh"
  "$BIN" -q generate --out "$wh/data" --count "$INDEX_ITEMS" --seed 7 >/dev/null
  "$BIN" -q ingest --no-lock --inventory "$wh/data/inventory.csv" --items-root "$wh/data/items" \
    --resolution 2 --warehouse "$wh/warehouse" --catalog "$wh/catalog.db" >/dev/null || [ $? = 3 ]
fi
rows=$("$BIN" info --json --catalog "$wh/catalog.db" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m.get("rows", m.get("total_rows", "?")))')
for i in $(seq "$REPEAT"); do
  measure "index rebuild ($rows rows, run $i)" "$BIN" -q index rebuild --no-lock --catalog "$wh/catalog.db"
done
# No-op re-ingest: the same inventory again. Every ingested id is in the (stamped, current)
# index, so only the generated broken items (never indexed) are fetched again.
for i in $(seq "$REPEAT"); do
  measure "no-op re-ingest ($INDEX_ITEMS keys, all known, run $i)" "$BIN" -q ingest --no-lock \
    --inventory "$wh/data/inventory.csv" --items-root "$wh/data/items" \
    --warehouse "$wh/warehouse" --catalog "$wh/catalog.db"
done

if [ -n "${PYTHON_COMPARE:-}" ]; then
  N=$PYTHON_COMPARE
  pq="$WORK/gen-$N-parquet"
  if [ ! -f "$pq/summary.json" ]; then
    rm -rf "$pq"
    "$BIN" generate-inventory --out "$pq" --keys "$N" --shards 16 --churn 0.001 --format parquet \
      > "$pq.json" && mkdir -p "$pq" && mv "$pq.json" "$pq/summary.json"
  fi
  for i in $(seq "$REPEAT"); do
    rm -rf "$WORK/pydelta" "$WORK/rsdelta"
    measure "python daily_delta logic ($N keys, Parquet, run $i)" \
      python3 "$(dirname "$0")/daily_python.py" "$pq/day2/manifest.json" "$pq/index.parquet" "$WORK/pydelta"
    measure "ours   delta             ($N keys, Parquet, run $i)" "$BIN" -q delta \
      --inventory "$pq/day2/manifest.json" --hash-index "$pq/index.parquet" \
      --delta-prefix "$WORK/rsdelta" --date 2026-11-25 --force
  done
fi
