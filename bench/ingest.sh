#!/usr/bin/env bash
# Ingest benchmark: generate N synthetic items into a local directory, then ingest them at H3
# resolution 1 and 2 and print items/s, rows, files and peak RSS.
#
#   bench/ingest.sh [N=100000] [WORKDIR=/var/tmp/ec-bench]
#
# Uses the release binary (EARTHCATALOG_BIN overrides). Needs GNU time (/usr/bin/time).
set -euo pipefail
N="${1:-100000}"
WORK="${2:-/var/tmp/ec-bench}"
BIN="${EARTHCATALOG_BIN:-${CARGO_TARGET_DIR:-target}/release/earthcatalog}"
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set EARTHCATALOG_BIN)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

DATA="$WORK/data-$N"
if [ ! -f "$DATA/inventory.csv" ]; then
  echo "generating $N items into $DATA ..." >&2
  "$BIN" generate --out "$DATA" --count "$N" --seed 1 >/dev/null
fi

printf '%-4s %10s %10s %10s %8s %10s %12s\n' res items items/s rows files seconds peak_rss_mb
for RES in 1 2; do
  OUT="$WORK/run-$N-res$RES"
  rm -rf "$OUT"
  /usr/bin/time -f '%M %e' -o "$WORK/time.txt" \
    "$BIN" -q ingest --json --no-lock --resolution "$RES" \
      --inventory "$DATA/inventory.csv" --items-root "$DATA/items" \
      --warehouse "$OUT/warehouse" --catalog "$OUT/catalog.db" > "$WORK/summary.json"
  read -r RSS_KB SECS < "$WORK/time.txt"
  python3 - "$WORK/summary.json" "$RES" "$RSS_KB" "$SECS" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
res, rss_kb, secs = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
items = m["fetched"] + m["failed"]
print(f"{res:<4} {items:>10} {items / secs:>10.0f} {m['rows']:>10} {m['files']:>8} {secs:>10.1f} {rss_kb / 1024:>12.0f}")
PY
done
