#!/usr/bin/env bash
# What readers gain from the bbox covering, and the itslive client beside our search:
#
#   bench/readers.sh covering [N=100000]
#       N generated items ingested at H3 resolution 2 and compacted twice: once by a binary
#       that writes the covering (EARTHCATALOG_BIN, default the release build) and once by one
#       that does not (NO_COVERING_BIN: a build from before the covering existed); then the
#       same searches by EARTHCATALOG_BIN on both warehouses: median wall ms of 11 runs, rows
#       scanned and geometries decoded (`search --stats`). Then the rows of the largest cell of
#       the same items at resolution 0 (every year, in a bucket's row order) written at several
#       row-group sizes: how many row groups the covering's statistics leave for small boxes.
#   bench/readers.sh itslive [N=100000]
#       N generated items ingested in the grid/level/tile layout at resolution 1 (the itslive
#       client's warehouse layout) and compacted; the same query through the itslive client's
#       serverless search (DuckDB engine: the hrefs of matching data assets) and through
#       `earthcatalog search` (the matching items as NDJSON): median wall time of 11 runs of
#       each whole command, and the number of items each returns.
#
# Needs a release build (cargo build --release), the tests' venv (test-venv: pyarrow) and, for
# itslive, the itslive venv (itslive-venv); scripts/test creates both in the target dir.
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT="${1:-covering}"
N="${2:-100000}"
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="${EARTHCATALOG_BIN:-$TARGET/release/earthcatalog}"
WORK="${WORK_ROOT:-/var/tmp/ec-bench}"
PY="$TARGET/test-venv/bin/python"
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set EARTHCATALOG_BIN)" >&2; exit 1; }
DATA="$WORK/data-$N"
[ -f "$DATA/inventory.csv" ] || "$BIN" generate --out "$DATA" --count "$N" --seed 1 >/dev/null

source bench/lib.sh

build() { # binary, out dir, extra ingest flags... (REUSE=1 keeps a warehouse built before)
  local bin=$1 out=$2; shift 2
  [ "${REUSE:-0}" = 1 ] && [ -f "$out/catalog.db" ] && return 0
  rm -rf "$out"
  "$bin" -q ingest --no-lock --json --inventory "$DATA/inventory.csv" --items-root "$DATA/items" \
    --warehouse "$out/warehouse" --catalog "$out/catalog.db" "$@" > /dev/null
  "$bin" -q compact --json --threshold 1 --warehouse "$out/warehouse" --catalog "$out/catalog.db" \
    > /dev/null
}

case "$WHAT" in
covering)
  NOCOVER="${NO_COVERING_BIN:?set NO_COVERING_BIN to a binary built before the covering}"
  build "$NOCOVER" "$WORK/cover-off-$N" --resolution 2
  build "$BIN" "$WORK/cover-on-$N" --resolution 2
  printf '%-26s %-9s %9s %13s %19s %13s\n' query covering median_ms rows_scanned geometries_decoded items
  for q in "point|--point -147.0,61.0" "small box (0.4°)|--bbox -147.2,60.9,-146.8,61.1" \
           "region (~10 cells)|--bbox -150,60,-144,63" \
           "region + filter|--bbox -150,60,-144,63 --filter percent_valid_pixels>50"; do
    name="${q%%|*}"; args=(${q#*|})
    for side in off on; do
      cat="$WORK/cover-$side-$N/catalog.db"
      stats=$("$BIN" search --catalog "$cat" "${args[@]}" --format ndjson --stats 2>&1 >/dev/null | tail -1)
      items=${stats%% items*}
      scanned=$(sed -E 's/.*rows scanned ([0-9]+).*/\1/' <<<"$stats")
      decoded=$(sed -E 's/.*geometries decoded ([0-9]+).*/\1/' <<<"$stats")
      printf '%-26s %-9s %9s %13s %19s %13s\n' "$name" "$side" \
        "$(median_ms "$BIN" search --catalog "$cat" "${args[@]}" --format ndjson)" \
        "$scanned" "$decoded" "$items"
    done
  done
  # Row groups: the largest buckets are those of resolution 0.
  build "$BIN" "$WORK/cover-on-res0-$N" --resolution 0
  "$PY" - "$WORK/cover-on-res0-$N/warehouse" <<'PY'
import glob, os, random, sys, tempfile
import pyarrow.parquet as pq
import collections
import pyarrow as pa
# The largest cell's rows of every year in one file, ordered as a bucket's rows are
# (platform, datetime): the shape of a large bucket of a production warehouse.
by_cell = collections.defaultdict(list)
for f in glob.glob(f"{sys.argv[1]}/grid_partition=*/year=*/*.parquet"):
    by_cell[f.split("grid_partition=")[1].split("/")[0]].append(f)
cell = max(by_cell, key=lambda c: sum(pq.ParquetFile(f).metadata.num_rows for f in by_cell[c]))
table = pa.concat_tables([pq.read_table(f) for f in by_cell[cell]], promote_options="default")
table = table.sort_by([("platform", "ascending"), ("datetime", "ascending")])
cov = table.column("geometry_bbox").combine_chunks()
xs = [(cov.field("xmin")[i].as_py(), cov.field("ymin")[i].as_py()) for i in range(len(table))]
random.seed(7)
queries = []
for _ in range(50):
    x, y = random.choice([p for p in xs if p[0] is not None])
    queries.append((x - 0.25, y - 0.25, x + 0.25, y + 0.25))
print(f"\nthe rows of cell {cell} (resolution 0, all years): {table.num_rows}; 50 boxes of 0.5° around its items")
print(f"{'row_group_rows':>14} {'row_groups':>10} {'read_per_query':>15}")
for size in (256, 1024, 4096, 16384, 65536):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f.parquet")
        pq.write_table(table, path, row_group_size=size, compression="zstd")
        md = pq.ParquetFile(path).metadata
        idx = {md.schema.column(i).path: i for i in range(md.num_columns)}
        boxes = []
        for g in range(md.num_row_groups):
            s = lambda f: md.row_group(g).column(idx[f"geometry_bbox.{f}"]).statistics
            boxes.append((s("xmin").min, s("ymin").min, s("xmax").max, s("ymax").max))
        read = [sum(1 for b in boxes if b[0] <= q[2] and b[2] >= q[0] and b[1] <= q[3] and b[3] >= q[1])
                for q in queries]
        print(f"{size:>14} {md.num_row_groups:>10} {sum(read) / len(read):>15.1f}")
PY
  ;;
itslive)
  IT="$TARGET/itslive-venv/bin/python"
  [ -x "$IT" ] || { echo "no itslive venv at $TARGET/itslive-venv (run scripts/test once)" >&2; exit 1; }
  OUT="$WORK/itslive-$N"
  build "$BIN" "$OUT" --resolution 1 --layout grid/level/tile
  # DuckDB's extensions from the wheels, under a HOME of their own (the client INSTALLs them).
  HOME_DIR="$WORK/itslive-home"
  EXT="$HOME_DIR/.duckdb/extensions/v1.4.4/linux_amd64"
  mkdir -p "$EXT"
  cp "$("$IT" -c 'import duckdb_ext; print(duckdb_ext.__path__[0])')"/extensions/v1.4.4/linux_amd64/* "$EXT/"
  BBOX="-150,60,-144,63"; START=2018-01-01; END=2020-12-31
  cat > "$WORK/itslive-query.py" <<PY
import itslive, sys
hrefs = itslive.search(bbox=[$BBOX], start="$START", end="$END",
                       base_catalog_href="$OUT/warehouse")
print(len(hrefs), file=sys.stderr)
PY
  ours=(search --catalog "$OUT/catalog.db" --bbox "$BBOX"
        --datetime "${START}T00:00:00Z/${END}T23:59:59Z" --filter "percent_valid_pixels >= 1"
        --format ndjson)
  n_it=$(env HOME="$HOME_DIR" "$IT" "$WORK/itslive-query.py" 2>&1 >/dev/null | tail -1)
  n_ours=$("$BIN" "${ours[@]}" | wc -l)
  printf '%-40s %9s %7s\n' reader median_ms items
  printf '%-40s %9s %7s\n' "itslive serverless search (DuckDB)" \
    "$(median_ms env HOME="$HOME_DIR" "$IT" "$WORK/itslive-query.py")" "$n_it"
  printf '%-40s %9s %7s\n' "earthcatalog search" "$(median_ms "$BIN" "${ours[@]}")" "$n_ours"
  ;;
*) echo "usage: bench/readers.sh covering|itslive [N]" >&2; exit 2 ;;
esac
