#!/usr/bin/env bash
# STAC API server benchmark on the 100k-item res-2 warehouse of bench/query.sh: point + 3-year
# search, region search, items/{id} lookup (through the id locator) and paging through 10k
# results, at 1, 8 and 64 concurrent clients; p50/p99 latency, requests/s and the server's
# peak RSS. Every figure is printed for each of REPEAT runs (report the range).
#
#   bench/serve.sh [WAREHOUSE_DIR=/var/tmp/ec-bench/run-100000-res2]
#   env: SECONDS_PER_RUN=10 REPEAT=3 CLIENTS="1 8 64" SCENARIOS="point region item paging"
#        SERVE_ARGS="--file-cache-mb 0" (extra `serve` flags: here, no decoded-file cache)
#
# Builds the warehouse with bench/ingest.sh 100000 when it is missing, and the id locator with
# `earthcatalog index locate`. The load generator is examples/serve_load.rs (a small Rust
# client: keep-alive connections, one request at a time per client); no wrk/oha needed.
set -euo pipefail
DIR="${1:-/var/tmp/ec-bench/run-100000-res2}"
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${EARTHCATALOG_BIN:-$TARGET/release/earthcatalog}"
LOAD="${SERVE_LOAD_BIN:-$TARGET/release/examples/serve_load}"
SECS="${SECONDS_PER_RUN:-10}"; REPEAT="${REPEAT:-3}"; CLIENTS="${CLIENTS:-1 8 64}"
[ -x "$BIN" ] && [ -x "$LOAD" ] || {
  echo "build first: cargo build --release --bin earthcatalog --example serve_load" >&2; exit 1; }
CAT="$DIR/catalog.db"
if [ ! -f "$CAT" ]; then
  EARTHCATALOG_BIN="$BIN" "$(dirname "$0")/ingest.sh" 100000 "$(dirname "$DIR")"
fi
WORK="$(mktemp -d)"; trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN" -q index locate --catalog "$CAT" --json > "$WORK/locate.json"

# Request mixes drawn from the warehouse itself (points at item centres, ids of real items).
"$BIN" search --catalog "$CAT" --max-items 3000 --format ndjson > "$WORK/items.ndjson"
python3 - "$WORK" <<'PY'
import json, random, sys, urllib.parse
work = sys.argv[1]
random.seed(7)
items = [json.loads(l) for l in open(f"{work}/items.ndjson")]
pts = [(i["properties"]["longitude"], i["properties"]["latitude"]) for i in items
       if isinstance(i["properties"].get("longitude"), (int, float))
       and isinstance(i["properties"].get("latitude"), (int, float))]
q = urllib.parse.quote
with open(f"{work}/point.txt", "w") as f:
    for lon, lat in random.sample(pts, min(500, len(pts))):
        g = json.dumps({"type": "Point", "coordinates": [lon, lat]}, separators=(",", ":"))
        f.write(f"/search?intersects={q(g)}&datetime={q('2018-01-01T00:00:00Z/2020-12-31T23:59:59Z')}&limit=100\n")
with open(f"{work}/region.txt", "w") as f:
    for lon, lat in random.sample(pts, min(200, len(pts))):
        wrap = lambda x: x - 360 if x > 180 else x + 360 if x < -180 else x
        f.write(f"/search?bbox={wrap(lon-3):.3f},{max(lat-1.5,-90):.3f},{wrap(lon+3):.3f},{min(lat+1.5,90):.3f}&limit=100\n")
with open(f"{work}/item.txt", "w") as f:
    ids = [i["id"] for i in items if i.get("collection") == "itslive-granules"]
    for i in random.sample(ids, min(1000, len(ids))):
        f.write(f"/collections/itslive-granules/items/{q(i, safe='')}\n")
PY

# shellcheck disable=SC2086
"$BIN" serve --catalog "$CAT" --bind 127.0.0.1:0 --reload-secs 0 ${SERVE_ARGS:-} \
  2> "$WORK/serve.log" & PID=$!
for _ in $(seq 600); do grep -q " on http://" "$WORK/serve.log" && break; sleep 0.1; done
BASE="$(grep -o 'http://[0-9.:]*' "$WORK/serve.log" | head -1)"
[ -n "$BASE" ] || { cat "$WORK/serve.log" >&2; exit 1; }
echo "warehouse: $DIR ($(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["rows"], "locator rows,", m["files"], "files")' "$WORK/locate.json"))"
echo "server: $BASE (pid $PID), $SECS s per run, $REPEAT runs"
# Paging: the first 10,000 results of a query matching more (10 pages of 1,000), walked again and
# again by each client.
PAGE='/search?datetime=2010-01-01T00:00:00Z/..&limit=1000'
N=$(curl -s "$BASE/search?datetime=2010-01-01T00:00:00Z/..&limit=10000" | python3 -c 'import json,sys; print(json.load(sys.stdin)["numberReturned"])')
[ "$N" -ge 10000 ] || { echo "the paging query matches only $N items" >&2; exit 1; }
echo "paging: 10 pages of 1,000 of a query matching more than 10,000 items"

printf '%-18s %7s %4s %9s %9s %9s %7s %s\n' scenario clients run req/s p50_ms p99_ms errors extra
for scenario in ${SCENARIOS:-point region item paging}; do
  for c in $CLIENTS; do
    for r in $(seq "$REPEAT"); do
      if [ "$scenario" = paging ]; then
        out=$("$LOAD" --base "$BASE" --clients "$c" --seconds "$SECS" --page-from "$PAGE" --max-pages 10)
      else
        out=$("$LOAD" --base "$BASE" --clients "$c" --seconds "$SECS" --paths "$WORK/$scenario.txt")
      fi
      python3 - "$scenario" "$c" "$r" "$out" <<'PY'
import json, sys
s, c, r, o = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
extra = f"{o['walks']} walks of 10k items, walk p50 {o['walk_p50_ms']:.0f} ms" if s == "paging" else ""
print(f"{s:<18} {c:>7} {r:>4} {o['rps']:>9.1f} {o['p50_ms']:>9.1f} {o['p99_ms']:>9.1f} {o['errors']:>7} {extra}")
PY
    done
  done
done
echo "peak RSS of the server: $(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' /proc/$PID/status)"
curl -s "$BASE/_health" > "$WORK/health.json"
python3 - "$WORK/health.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
print(f"pages resumed from suspended streams: {h.get('pages_resumed', 0):,}, "
      f"recomputed: {h.get('pages_recomputed', 0):,}")
c = h.get("file_cache")
if c is None:
    print("decoded-file cache: off")
else:
    share = 100 * c["hits"] / max(1, c["hits"] + c["misses"])
    print(f"decoded-file cache: {c['hits']:,} hits, {c['misses']:,} misses ({share:.0f} % hits), "
          f"{c['files']:,} files, {c['bytes'] / 2**20:.0f} MiB")
PY
