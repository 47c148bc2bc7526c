#!/usr/bin/env python3
"""The Python earthcatalog's daily_delta.py logic on local files, for bench/daily.sh.

Runs the script's own functions (from the 0.6.1 sdist, downloaded into the pip cache dir on
first use) on a local manifest whose Parquet data files sit beside it: stream the inventory and
hash the ids, load the hash index into a set, anti-join, write the delta. Only the store is
local (an obstore LocalStore instead of S3).

    daily_python.py MANIFEST INDEX OUTDIR
"""
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile


def load_script():
    cache = os.path.join(tempfile.gettempdir(), "earthcatalog-0.6.1-sdist")
    path = os.path.join(cache, "earthcatalog-0.6.1", "scripts", "daily_delta.py")
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        subprocess.check_call(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", "--ignore-requires-python", "earthcatalog==0.6.1", "-d", cache])
        with tarfile.open(os.path.join(cache, "earthcatalog-0.6.1.tar.gz")) as t:
            t.extractall(cache)
    spec = importlib.util.spec_from_file_location("daily_delta", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    manifest_path, index, out = sys.argv[1:4]
    dd = load_script()
    from obstore.store import LocalStore
    with open(manifest_path) as f:
        manifest = json.load(f)
    store = LocalStore(os.path.dirname(os.path.abspath(manifest_path)))
    pairs, hashes = dd._stream_inventory_hashes(manifest, store)
    wh = dd._build_hash_set(dd._download_hash_index_local(index))
    new = [(b, k, h) for (b, k), h in zip(pairs, hashes) if h not in wh]
    n = dd._write_delta_parquet_local(new, os.path.join(out, "pending", "delta_2026-11-25.parquet"))
    print(json.dumps({"inventory": len(pairs), "index": len(wh), "new": n}))


if __name__ == "__main__":
    main()
