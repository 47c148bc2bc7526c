#!/usr/bin/env bash
# Compaction cost in instructions (valgrind's callgrind), for comparisons that this shared,
# noisy VM's timings cannot settle: the same binary on the same warehouse executes the same
# instruction count whatever else the machine is doing, so a change worth 2-5 % shows, where
# CPU seconds of one binary vary by ±20 % between runs here.
#
#   bench/compact_instructions.sh [BIN...]     (default: the release build)
#   env: WORK=/var/tmp/ec-bench
#
# The warehouse is the production shape of bench/compact.sh at a tenth of its size (one
# 10,000-item backfill plus seven daily ingests of 200 new items: ~3,000 files, ~16,000 rows),
# built once with the first binary and restored before each run (callgrind runs ~50x slower
# than native: ~1.5 minutes per binary). Per binary: instructions in all, per row, and the
# shares of decoding, encoding, zstd and the allocator. Instructions are not time (they miss
# cache misses, page faults and lock waits): confirm a gain in seconds with bench/compact.sh.
set -euo pipefail
[ $# -gt 0 ] || set -- "${CARGO_TARGET_DIR:-target}/release/earthcatalog"
for b in "$@"; do [ -x "$b" ] || { echo "not an executable: $b (cargo build --release)" >&2; exit 1; }; done
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null
WORK="${WORK:-/var/tmp/ec-bench}"
BIN="$(realpath "$1")"
DATA="$WORK/data-114000"
OUT="$WORK/compact-instructions"
mkdir -p "$WORK"

ingest() { # inventory
  "$BIN" -q ingest --json --no-lock --resolution 1 --no-hash-index --inventory "$1" \
    --items-root "$DATA/items" --warehouse "$OUT/warehouse" --catalog "$OUT/catalog.db" >/dev/null
}
slice() { { head -1 "$DATA/inventory.csv"; tail -n +2 "$DATA/inventory.csv" | sed -n "$1,$2p"; } > "$3"; }

if [ ! -d "$OUT.pristine" ]; then
  [ -f "$DATA/inventory.csv" ] || "$BIN" generate --out "$DATA" --count 114000 --seed 1 >/dev/null
  rm -rf "$OUT" && mkdir -p "$OUT"
  slice 1 10000 "$OUT/backfill.csv" && ingest "$OUT/backfill.csv"
  for day in 1 2 3 4 5 6 7; do
    from=$((100000 + (day - 1) * 200 + 1))
    slice "$from" $((from + 199)) "$OUT/day$day.csv" && ingest "$OUT/day$day.csv"
  done
  cp -a "$OUT" "$OUT.pristine"
fi

for b in "$@"; do
  rm -rf "$OUT" && cp -a "$OUT.pristine" "$OUT"
  valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" "$(realpath "$b")" -q \
    compact --json --warehouse "$OUT/warehouse" --catalog "$OUT/catalog.db" \
    > "$WORK/compact.json" 2> "$WORK/callgrind.err"
  callgrind_annotate --inclusive=yes "$WORK/callgrind.out" > "$WORK/inclusive.txt" 2>/dev/null
  callgrind_annotate "$WORK/callgrind.out" > "$WORK/self.txt" 2>/dev/null
  python3 - "$b" "$WORK" <<'PY'
import json, re, sys
b, work = sys.argv[1], sys.argv[2]
m = json.load(open(f"{work}/compact.json"))
def costs(path):
    out = []
    for line in open(path):
        g = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
        if g:
            out.append((int(g.group(1).replace(",", "")), g.group(2)))
    return out
inc, own = costs(f"{work}/inclusive.txt"), costs(f"{work}/self.txt")
total = next(n for n, name in inc if name.startswith("PROGRAM TOTALS"))
def first(rows, pat):  # largest entry (the listing repeats a function per source file inlined)
    return max((n for n, name in rows if re.search(pat, name)), default=0)
def total_of(rows, pat):
    return sum(n for n, name in rows if re.search(pat, name))
shares = {
    "decode": first(inc, r"decode::decode_file_without\b"),
    "encode": first(inc, r"GeoParquetWriter<W>::finish\b") + first(inc, r"GeoParquetWriter<W>::write_batch\b"),
    "zstd compress": first(inc, r":ZSTD_compress2\b"),
    "zstd decompress": first(inc, r":ZSTD_decompressDCtx\b"),
    "allocator (self)": total_of(own, r"malloc/malloc\.c:|__rust_alloc|__rust_dealloc|__rdl_"),
}
print(f"{b}: {total / 1e9:.3f} G instructions, {m['rows_before']:,} rows "
      f"({total / m['rows_before']:,.0f} per row), files {m['files_before']} -> {m['files_after']}")
print("  " + ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in shares.items()))
PY
done
