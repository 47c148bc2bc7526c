#!/usr/bin/env bash
# Backfill benchmark: plan/map/reduce/commit with W = 1, 2 and 4 local workers over N generated
# items, against a single `ingest` of the same items. Reports per-worker map items/s (vs ingest),
# reduce rows/s, commit seconds and peak RSS per worker, then a commit of ~N staged outputs.
#
#   bench/backfill.sh [N=100000] [WORKDIR=/var/tmp/ec-bench] [ITEMS=s3|local]
#
# ITEMS=s3 (default) serves the items from a moto S3 server (moto_server on PATH) like the
# tests do; ITEMS=local reads them from a local items root (use it when moto is the bottleneck:
# it is a single Python process). Staging, warehouse and catalog are local. Release build
# (EARTHCATALOG_BIN overrides); needs GNU time.
set -euo pipefail
N="${1:-100000}"
WORK="${2:-/var/tmp/ec-bench}"
ITEMS="${3:-s3}"
BIN="${EARTHCATALOG_BIN:-${CARGO_TARGET_DIR:-target}/release/earthcatalog}"
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set EARTHCATALOG_BIN)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
mkdir -p "$WORK"
BIN="$(realpath "$BIN")"

DATA="$WORK/data-$N"
[ -f "$DATA/inventory.csv" ] || "$BIN" generate --out "$DATA" --count "$N" --seed 1 >/dev/null
INVENTORY="$DATA/inventory.csv"
ROOT="$DATA/items"
if [ "$ITEMS" = s3 ]; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
  MOTO=$!
  trap 'kill $MOTO 2>/dev/null || true' EXIT
  export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=testing \
    AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  for _ in $(seq 100); do curl -s "$AWS_ENDPOINT_URL" >/dev/null && break; sleep 0.1; done
  curl -s -X PUT "$AWS_ENDPOINT_URL/items" >/dev/null
  echo "uploading $N items to moto ..." >&2
  "$BIN" -q generate --out s3://items/synth --count "$N" --seed 1 >/dev/null
  ROOT="s3://items/synth/items"
fi
echo "items from $ROOT" >&2

# time_json OUT_JSON TIME_FILE cmd... : run cmd with GNU time, stdout to OUT_JSON; TIME_FILE
# gets "peak-RSS-KB wall-s user-s sys-s". Exit 3 (finished, some items failed: the generated
# data holds the inputs that break the Python tool on purpose, see docs/decisions.md) is not an error here.
time_json() {
  local out=$1 tf=$2 rc=0; shift 2
  /usr/bin/time -f '%M %e %U %S' -o "$tf.raw" "$@" > "$out" || rc=$?
  tail -1 "$tf.raw" > "$tf" && rm -f "$tf.raw"
  [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "failed (exit $rc): $*" >&2; exit "$rc"; }
}

# Baseline: one ingest of the same items.
BASE="$WORK/bf-ingest-$N"
rm -rf "$BASE"
time_json "$WORK/ingest.json" "$WORK/ingest.time" "$BIN" -q ingest --json --no-lock \
  --resolution 1 --inventory "$INVENTORY" --items-root "$ROOT" \
  --warehouse "$BASE/warehouse" --catalog "$BASE/catalog.db"
read -r RSS SECS _ _ < "$WORK/ingest.time"
INGEST_RATE=$(python3 -c "import json;m=json.load(open('$WORK/ingest.json'));print(round((m['fetched']+m['failed'])/$SECS))")
echo "single ingest: $INGEST_RATE items/s, $SECS s, peak RSS $((RSS / 1024)) MB"

printf '%-2s %9s %13s %9s %9s %14s %9s %9s %9s %7s\n' W map_s items/s/wkr vs_ingest map_MB red_rows/cpu_s reduce_s red_MB commit_s files
for W in 1 2 4; do
  OUT="$WORK/bf-$N-w$W"
  rm -rf "$OUT"
  "$BIN" -q backfill plan --json --no-lock --resolution 1 --inventory "$INVENTORY" \
    --staging "$OUT/staging" --warehouse "$OUT/warehouse" --catalog "$OUT/catalog.db" \
    --map-shards "$W" --reduce-shards "$W" > "$OUT.plan.json"
  start=$(date +%s.%N)
  for i in $(seq 0 $((W - 1))); do
    time_json "$OUT.map$i.json" "$OUT.map$i.time" "$BIN" -q backfill map --json \
      --staging "$OUT/staging" --shard "$i" --items-root "$ROOT" &
  done
  wait
  MAP_S=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
  start=$(date +%s.%N)
  for j in $(seq 0 $((W - 1))); do
    time_json "$OUT.reduce$j.json" "$OUT.reduce$j.time" "$BIN" -q backfill reduce --json \
      --staging "$OUT/staging" --shard "$j" &
  done
  wait
  RED_S=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
  time_json "$OUT.commit.json" "$OUT.commit.time" "$BIN" -q backfill commit --json --no-lock \
    --staging "$OUT/staging"
  python3 - "$OUT" "$W" "$MAP_S" "$RED_S" "$INGEST_RATE" <<'PY'
import json, sys
out, w, map_s, red_s, ingest = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
def timed(name, cpu=False):
    rss, secs, user, sys_ = open(f"{out}.{name}.time").read().split()
    secs = float(user) + float(sys_) if cpu else float(secs)
    return json.load(open(f"{out}.{name}.json")), int(rss) / 1024, secs
maps = [timed(f"map{i}") for i in range(w)]
reds = [timed(f"reduce{j}", cpu=True) for j in range(w)]
commit, _, commit_s = timed("commit")
# Per worker: its keys over its own wall time (process start to exit). Reduce: rows merged per
# CPU-second (user + system), i.e. per core, whatever else runs on the machine.
rate = sum(m["keys"] / s for m, _, s in maps) / w
red_rate = sum(r["rows_in"] for r, _, _ in reds) / max(sum(s for _, _, s in reds), 1e-9)
print(f"{w:<2} {map_s:>9.1f} {rate:>13.0f} {rate / ingest:>8.0%} {max(m for _, m, _ in maps):>9.0f} "
      f"{red_rate:>14.0f} {red_s:>9.1f} {max(m for _, m, _ in reds):>9.0f} {commit_s:>9.1f} {commit['files_added']:>7}")
PY
done

# Commit of many staged outputs: MANY_ROWS rows per output file (1 by default: one file per
# row, ~1.6 N files at res 1).
OUT="$WORK/bf-$N-many"
rm -rf "$OUT"
"$BIN" -q backfill plan --json --no-lock --resolution 1 --inventory "$INVENTORY" \
  --staging "$OUT/staging" --warehouse "$OUT/warehouse" --catalog "$OUT/catalog.db" \
  --map-shards 2 --reduce-shards 2 > /dev/null
for i in 0 1; do "$BIN" -q backfill map --json --staging "$OUT/staging" --shard "$i" --items-root "$ROOT" > /dev/null & done; wait
for j in 0 1; do "$BIN" -q backfill reduce --json --staging "$OUT/staging" --shard "$j" --max-rows-per-file "${MANY_ROWS:-1}" > /dev/null & done; wait
time_json "$OUT.commit.json" "$OUT.commit.time" "$BIN" -q backfill commit --json --no-lock --staging "$OUT/staging"
read -r RSS SECS _ _ < "$OUT.commit.time"
python3 - "$OUT.commit.json" "$SECS" "$RSS" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
t = m["timings"]
print(f"commit of {m['files_added']} staged outputs: {float(sys.argv[2]):.1f} s, peak RSS {int(sys.argv[3]) / 1024:.0f} MB "
      f"(entries {t.get('footers', 0):.1f} s, {m.get('footers_read', m['files_added'])} footers read, "
      f"catalog commit {t.get('commit', 0):.1f} s, "
      f"hash index {t.get('index', 0):.1f} s, cleanup {t.get('cleanup', 0) + t.get('staging', 0):.1f} s)")
PY
