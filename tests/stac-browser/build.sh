#!/usr/bin/env bash
# Build STAC Browser 4.0.1 into static files, and install playwright-core beside it.
#
#   tests/stac-browser/build.sh [OUT_DIR]
#
# OUT_DIR defaults to $STAC_BROWSER_DIR, else ${CARGO_TARGET_DIR:-/var/tmp/earthcatalog-target}/stac-browser.
# Everything goes there, nothing into the repository:
#   OUT_DIR/node_modules   npm ci of package.json + package-lock.json (this directory): STAC Browser,
#                          its build tools (vue-cli), playwright-core; ol-stac pinned to 1.1.0 (overrides)
#   OUT_DIR/app            the STAC Browser sources copied out of node_modules (vue-cli's babel rule
#                          skips anything under node_modules, so it is not built in place), with
#                          app/node_modules -> ../node_modules
#   OUT_DIR/dist           the static site: hash routing (any static file server works, no rewrites),
#                          no catalogUrl baked in; dist/config.js is loaded at run time and may set
#                          window.STAC_BROWSER_CONFIG = {catalogUrl: "http://127.0.0.1:PORT/"}
#                          (check.mjs injects it), or open  SITE/#/external/http:/127.0.0.1:PORT/
# A no-op when OUT_DIR/dist was built from the same package.json, package-lock.json and build.sh.
# Debian's chromium is installed with apt-get when /usr/bin/chromium is missing (as root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-${STAC_BROWSER_DIR:-${CARGO_TARGET_DIR:-/var/tmp/earthcatalog-target}/stac-browser}}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "build.sh: installing Debian chromium" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "build.sh: ${CHROMIUM:-/usr/bin/chromium} missing (apt-get install chromium)" >&2
    exit 1
  fi
fi

stamp=$(cat "$here/package.json" "$here/package-lock.json" "$here/build.sh" | sha256sum | cut -c1-16)
if [ -f "$out/dist/index.html" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "build.sh: $out/dist is up to date"
  exit 0
fi

t0=$(date +%s)
# 1. Install (npm ci: exactly the lock file).
deps_stamp=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)
if [ "$(cat "$out/.deps-stamp" 2>/dev/null)" != "$deps_stamp" ]; then
  rm -f "$out/.deps-stamp"
  cp "$here/package.json" "$here/package-lock.json" "$out/"
  (cd "$out" && npm ci --include=dev --no-audit --no-fund --loglevel=error)
  echo "$deps_stamp" > "$out/.deps-stamp"
fi
t1=$(date +%s)

# 2. Sources out of node_modules, with the run-time config.js script enabled.
rm -rf "$out/app" "$out/dist" "$out/.stamp"
cp -a "$out/node_modules/@radiantearth/stac-browser" "$out/app"
ln -s ../node_modules "$out/app/node_modules"   # its styles import ../../node_modules/ol/ol.css
sed -i 's#<!-- <script defer="defer" src="/config.js"></script> -->#<script defer="defer" src="config.js"></script>#' \
  "$out/app/public/index.html"
grep -q '<script defer="defer" src="config.js">' "$out/app/public/index.html" || {
  echo "build.sh: could not enable config.js in public/index.html" >&2; exit 1; }

# 3. Build (options as SB_* environment variables, see STAC Browser's docs/options.md).
(
  cd "$out/app"
  export NODE_ENV=production SB_historyMode=hash SB_noSourceMaps=true \
         SB_catalogTitle="earthcatalog STAC Browser" SB_allowExternalAccess=true
  node "$out/node_modules/@vue/cli-service/bin/vue-cli-service.js" build --no-clean >"$out/build.log" 2>&1 || {
    tail -40 "$out/build.log" >&2; exit 1; }
)
mv "$out/app/dist" "$out/dist"
t2=$(date +%s)
echo "$stamp" > "$out/.stamp"
echo "build.sh: $out/dist built (install $((t1 - t0)) s, build $((t2 - t1)) s)"
