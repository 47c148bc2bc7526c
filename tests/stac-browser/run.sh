#!/usr/bin/env bash
# End to end: build STAC Browser (no-op when built), ingest the bundled example into a temporary
# directory, serve it with `earthcatalog serve`, serve the static site, run check.mjs, stop both.
#
#   tests/stac-browser/run.sh [REPORT_DIR]      (default: a new temporary directory)
#
# Needs an earthcatalog binary: $EARTHCATALOG, else ${CARGO_TARGET_DIR:-/var/tmp/earthcatalog-target}/debug/earthcatalog
# (this script does not build it). Exit status: check.mjs's (0 all checks pass, 1 some fail).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-/var/tmp/earthcatalog-target}
export STAC_BROWSER_DIR=${STAC_BROWSER_DIR:-$target/stac-browser}
ec=${EARTHCATALOG:-$target/debug/earthcatalog}
[ -x "$ec" ] || { echo "run.sh: no earthcatalog binary at $ec (cargo build, or set EARTHCATALOG)" >&2; exit 2; }

"$here/build.sh" "$STAC_BROWSER_DIR" >&2   # stdout is the JSON report

work=$(mktemp -d /tmp/stac-browser-run.XXXXXX)
report=${1:-$work/report}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work/earthcatalog-data"   # the logs stay
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "run.sh: $1 did not answer" >&2; return 1
}

(cd "$work" && "$ec" -q ingest --inventory "$repo/examples/data/inventory.csv" --items-root "$repo/examples/data/items" \
  && "$ec" -q index locate --catalog earthcatalog-data/catalog.db) >"$work/ingest.log" 2>&1 \
  || { cat "$work/ingest.log" >&2; exit 1; }

api_port=$(free_port)
"$ec" serve --catalog "$work/earthcatalog-data/catalog.db" --bind "127.0.0.1:$api_port" >"$work/serve.log" 2>&1 &
pids+=($!)
site_port=$(free_port)
python3 -m http.server "$site_port" --bind 127.0.0.1 --directory "$STAC_BROWSER_DIR/dist" >"$work/static.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$api_port/"
wait_http "http://127.0.0.1:$site_port/"

set +e
node "$here/check.mjs" "http://127.0.0.1:$api_port/" "http://127.0.0.1:$site_port/" "$report"
rc=$?
set -e
echo "run.sh: report and screenshots in $report; server logs in $work" >&2
exit $rc
