"""The Python tool's warehouse, compacted by it and by us on identical copies."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

from earthcatalog.maintenance.compact import compact_warehouse

from conftest import BIN_DIR, PEER_DIR, copy_tree, peer_python, run_peer

PEER_COMPACT = """
import contextlib, io, json, sys
from earthcatalog.maintenance.compact import compact_warehouse
with contextlib.redirect_stdout(io.StringIO()):
    summary = compact_warehouse(sys.argv[1], sys.argv[2], threshold=2)
print(json.dumps(summary))
"""

KEYS = ("buckets_scanned", "buckets_compacted", "files_before", "files_after")


def test_our_compaction_of_a_python_tool_warehouse_matches_the_python_tool(tmp_path: pathlib.Path) -> None:
    peer_python()
    items = tmp_path / "gen"
    subprocess.run(
        [str(BIN_DIR / "earthcatalog"), "generate", "--out", str(items), "--count", "300", "--seed", "7",
         "--special-fraction", "0"],
        check=True, capture_output=True,
    )
    root = tmp_path / "wh"
    built = json.loads(run_peer(str(PEER_DIR / "build_warehouse.py"), str(root), str(items / "items")))
    assert built["files"] > built["items"]  # overlapping batches: buckets with several files
    orig = tmp_path / "wh.orig"
    copy_tree(root, orig)
    warehouse, db = str(root / "warehouse"), str(root / "earthcatalog.db")
    reader = str(PEER_DIR / "read_rows.py")
    before = json.loads(run_peer(reader, db, warehouse))

    theirs = json.loads(run_peer("-c", PEER_COMPACT, warehouse, db))
    their_rows = json.loads(run_peer(reader, db, warehouse))

    copy_tree(orig, root)
    # The documented snippet, unchanged.
    ours = compact_warehouse(warehouse_path=warehouse, catalog_path=db, threshold=2)
    our_rows = json.loads(run_peer(reader, db, warehouse))

    assert {k: ours[k] for k in KEYS} == theirs
    assert theirs["buckets_compacted"] > 0
    # PyIceberg reads both results: the same (id, cell, year) rows, each id once per bucket.
    assert our_rows["rows"] == their_rows["rows"]
    assert {tuple(r) for r in our_rows["rows"]} == {tuple(r) for r in before["rows"]}
    assert our_rows["files"] == their_rows["files"] == theirs["files_after"]

    # The documented command line, unchanged, on another identical copy.
    copy_tree(orig, root)
    out = subprocess.run(
        [sys.executable, "-m", "earthcatalog.maintenance.compact", "--warehouse", warehouse, "--catalog", db,
         "--threshold", "2"],
        capture_output=True, text=True, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"Buckets compacted : {theirs['buckets_compacted']}" in out.stdout
    assert f"Part files after  : {theirs['files_after']}" in out.stdout
