#!/usr/bin/env bash
# The Python package side by side with its peers, in one sitting:
#
#   bench/python.sh search  [N=20000]   the same searches through our search_to_arrow, the
#                                       Python tool's search_to_arrow and its duck_search, on one
#                                       warehouse (N generated items, ingested and compacted);
#                                       median wall time of each whole call (open + search)
#   bench/python.sh compact [WORK]      compact_warehouse from Python vs `earthcatalog compact`
#                                       on restored copies of the production-shape warehouse
#                                       (bench/compact.sh production builds it), alternated
#   bench/python.sh bulk    [N=20000]   bulk_ingest on a Dask LocalCluster of 1, 2 and 4 worker
#                                       processes vs `backfill map` from the command line:
#                                       items per second per worker in the map stage
#
# Needs a release build of the command line (cargo build --release) and two venvs: ours
# (BENCH_VENV, default $CARGO_TARGET_DIR/bench-venv: created here with `pip install .`, a
# release build) and the Python tool's (PEER_VENV, default the tests' test-venv, see
# scripts/test; DuckDB and its spatial extension are installed into it here, offline, from the
# duckdb and duckdb-ext-spatial wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT="${1:-search}"
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="${EARTHCATALOG_BIN:-$TARGET/release/earthcatalog}"
BENCH_VENV="${BENCH_VENV:-$TARGET/bench-venv}"
PEER_VENV="${PEER_VENV:-$TARGET/test-venv}"
WORK_ROOT="${WORK_ROOT:-/var/tmp/ec-bench}"
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set EARTHCATALOG_BIN)" >&2; exit 1; }
[ -x "$PEER_VENV/bin/python" ] || { echo "no Python tool venv at $PEER_VENV (run scripts/test once)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

if [ ! -x "$BENCH_VENV/bin/python" ] || [ "${REBUILD:-0}" = 1 ]; then
  python3 -m venv "$BENCH_VENV"
  "$BENCH_VENV/bin/pip" install --quiet maturin==1.16.0 pyarrow==26.0.1 pystac==1.15.2 \
    "dask[distributed]==2026.8.0"
  PATH="$BENCH_VENV/bin:$PATH" CARGO_TARGET_DIR="$TARGET" \
    "$BENCH_VENV/bin/pip" install --quiet --no-build-isolation --force-reinstall --no-deps .
fi

# A warehouse in the Python tool's base layout (base/earthcatalog.db, base/warehouse), of items
# without edge cases: the tool's pruning crashes on a `year=unknown` file (`docs/decisions.md`).
build_base() { # N → echo base dir
  local n=$1 data="$WORK_ROOT/data-$1-plain" base="$WORK_ROOT/py-base-$1"
  [ -f "$data/inventory.csv" ] || "$BIN" generate --out "$data" --count "$n" --seed 1 \
    --special-fraction 0 >/dev/null
  if [ ! -f "$base/earthcatalog.db" ]; then
    rm -rf "$base"
    "$BIN" -q ingest --no-lock --resolution 1 --inventory "$data/inventory.csv" \
      --items-root "$data/items" --warehouse "$base/warehouse" --catalog "$base/earthcatalog.db" >/dev/null
    "$BIN" -q compact --no-lock --warehouse "$base/warehouse" --catalog "$base/earthcatalog.db" >/dev/null
  fi
  echo "$base"
}

case "$WHAT" in
search)
  N="${2:-20000}"
  BASE=$(build_base "$N")
  if ! "$PEER_VENV/bin/python" -c "import duckdb_ext, pandas" 2>/dev/null; then
    "$PEER_VENV/bin/pip" install --quiet duckdb==1.4.4 pandas==3.1.2 duckdb-ext-spatial==1.4.4.20260205 \
      duckdb-ext-httpfs==1.4.4.20260205
  fi
  # The extensions from their wheels into DuckDB's extension directory (no download).
  "$PEER_VENV/bin/python" - <<'PY'
import pathlib, shutil, duckdb_ext
src = pathlib.Path(duckdb_ext.__path__[0]) / "extensions"
for f in src.rglob("*.duckdb_extension"):
    dest = pathlib.Path.home() / ".duckdb" / "extensions" / f.relative_to(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(f, dest)
PY
  echo "warehouse: $("$BIN" info --catalog "$BASE/earthcatalog.db" --json | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["files"], "files,", m["rows"], "rows")')"
  QUERIES='[
    ["point, 2018-2020", {"intersects": {"type": "Point", "coordinates": [-45.0, 70.0]}, "datetime": "2018-01-01T00:00:00Z/2020-12-31T23:59:59Z"}],
    ["region (10x5 deg)", {"intersects": {"type": "Polygon", "coordinates": [[[-50, 65], [-40, 65], [-40, 70], [-50, 70], [-50, 65]]]}}],
    ["region + filter", {"intersects": {"type": "Polygon", "coordinates": [[[-50, 65], [-40, 65], [-40, 70], [-50, 70], [-50, 65]]]}, "filter": {"op": ">", "args": [{"property": "percent_valid_pixels"}, 50]}}]
  ]'
  TIMER='
import json, statistics, sys, time
def bench(label, call, runs=5):
    call()  # warm-up (imports, caches)
    times, rows = [], None
    for _ in range(runs):
        t = time.perf_counter(); out = call(); times.append(time.perf_counter() - t)
        rows = len(out)
    print(json.dumps({"side": label, "median_s": statistics.median(times), "min_s": min(times), "rows": rows}))
'
  for q in 0 1 2; do
    "$BENCH_VENV/bin/python" - "$BASE" "$QUERIES" "$q" <<PY
$TIMER
import earthcatalog as ec
base, queries, q = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
name, params = queries[q]
print("#", name)
bench("ours search_to_arrow", lambda: ec.open(base=base).search_to_arrow(**params))
PY
    "$PEER_VENV/bin/python" - "$BASE" "$QUERIES" "$q" <<PY 2>/dev/null
$TIMER
import contextlib, io, logging
logging.disable(logging.CRITICAL)
import earthcatalog as ec
from obstore.store import LocalStore
base, queries, q = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
name, params = queries[q]
def quiet(f):
    def g():
        with contextlib.redirect_stdout(io.StringIO()):
            return f()
    return g
for label, method in (("python tool search_to_arrow", "search_to_arrow"), ("python tool duck_search", "duck_search")):
    try:
        bench(label, quiet(lambda: getattr(ec.open(store=LocalStore("/"), base=base), method)(**params)))
    except Exception as e:  # report, do not hide, a failing peer
        print(json.dumps({"side": label, "error": f"{type(e).__name__}: {str(e)[:160]}"}))
PY
  done
  ;;
compact)
  WORK="${2:-$WORK_ROOT}"
  SRC="$WORK/compact-production"
  # bench/compact.sh builds the production shape; KEEP_ORIG keeps its input for the restores.
  [ -d "$SRC.orig" ] || { echo "no $SRC.orig: run 'KEEP_ORIG=1 bench/compact.sh production $WORK'" >&2; exit 1; }
  for pair in 1 2 3; do
    rm -rf "$SRC" && cp -a "$SRC.orig" "$SRC"
    /usr/bin/time -f "python compact_warehouse: %e s wall, %U s user, %S s sys, %M KB" \
      "$BENCH_VENV/bin/python" -c "import sys; from earthcatalog.maintenance.compact import compact_warehouse; \
r = compact_warehouse(sys.argv[1] + '/warehouse', sys.argv[1] + '/catalog.db'); print(r['files_before'], '->', r['files_after'])" "$SRC"
    rm -rf "$SRC" && cp -a "$SRC.orig" "$SRC"
    /usr/bin/time -f "cli earthcatalog compact: %e s wall, %U s user, %S s sys, %M KB" \
      "$BIN" -q compact --json --no-lock --warehouse "$SRC/warehouse" --catalog "$SRC/catalog.db" \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["files_before"], "->", r["files_after"])'
  done
  ;;
bulk)
  N="${2:-20000}"
  DATA="$WORK_ROOT/data-$N"
  [ -f "$DATA/inventory.csv" ] || "$BIN" generate --out "$DATA" --count "$N" --seed 1 >/dev/null
  # The command line: plan with one map shard per 5,000 items, then each map shard in turn,
  # one process at a time (one worker); twice, the first round a warm-up (page cache).
  SHARDS=$(( (N + 4999) / 5000 ))
  for round in warm-up measured; do
    OUT="$WORK_ROOT/bulk-cli"; rm -rf "$OUT"
    "$BIN" -q backfill plan --no-lock --inventory "$DATA/inventory.csv" --staging "$OUT/staging" \
      --warehouse "$OUT/warehouse" --catalog "$OUT/catalog.db" --map-shards "$SHARDS" --reduce-shards 2 >/dev/null
    total=0
    for s in $(seq 0 $((SHARDS - 1))); do
      /usr/bin/time -f %e -o "$WORK_ROOT/map-time.txt" \
        "$BIN" -q backfill map --staging "$OUT/staging" --shard "$s" --items-root "$DATA/items" >/dev/null
      total=$(python3 -c "print($total + $(cat "$WORK_ROOT/map-time.txt"))")
    done
  done
  echo "cli backfill map, one process at a time: $N items in $total s = $(python3 -c "print(f'{$N / $total:.0f}')") items/s"
  # Dask starts worker processes by spawning the main module: the script must be a file.
  cat > "$WORK_ROOT/bulk_dask.py" <<'PY'
import sys
from dask.distributed import Client, LocalCluster
import earthcatalog as ec

if __name__ == "__main__":
    data, out, workers, shards = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cat = ec.open(base=out)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        r = cat.bulk_ingest(f"{data}/inventory.csv", client=client, map_shards=shards, reduce_shards=2,
                            items_root=f"{data}/items", update_hash_index=False)
    items = sum(m.get("items", 0) for m in r["map"])
    s = r["seconds"]
    print(f"dask bulk_ingest, {workers} worker(s): map {items} items in {s['map']:.2f} s = "
          f"{items / s['map'] / workers:.0f} items/s per worker; plan {s['plan']:.2f} s, "
          f"reduce {s['reduce']:.2f} s, commit {s['commit']:.2f} s")
PY
  for W in 1 2 4; do
    OUT="$WORK_ROOT/bulk-dask-$W"; rm -rf "$OUT"
    "$BENCH_VENV/bin/python" "$WORK_ROOT/bulk_dask.py" "$DATA" "$OUT" "$W" "$SHARDS"
  done
  ;;
*) echo "usage: bench/python.sh search|compact|bulk [...]" >&2; exit 2 ;;
esac
