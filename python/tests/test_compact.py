"""``compact_warehouse`` and ``python -m earthcatalog.maintenance.compact`` as documented."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import earthcatalog as ec
from earthcatalog import errors
from earthcatalog.maintenance.compact import compact_warehouse

from conftest import EXAMPLE, ingest_example, make_bucket, s3_options


def _twice(base: pathlib.Path) -> ec.EarthCatalog:
    """The example ingested twice with --mode all: every bucket holds two files, every id two rows."""
    cat = ingest_example(base)
    cat.ingest(str(EXAMPLE / "inventory.csv"), items_root=str(EXAMPLE / "items"), mode="all", progress=False)
    return cat


def test_the_documented_call_compacts_and_returns_the_four_keys(tmp_path: pathlib.Path) -> None:
    cat = _twice(tmp_path / "c")
    before = cat.stats()
    summary = compact_warehouse(
        warehouse_path=str(tmp_path / "c" / "warehouse"),
        catalog_path=str(tmp_path / "c" / "earthcatalog.db"),
        threshold=2,
    )
    files_before = sum(b["files"] for b in before)
    assert summary["buckets_scanned"] == len(before)
    assert summary["files_before"] == files_before
    assert summary["buckets_compacted"] == len(before)
    assert summary["files_after"] == len(before)
    assert summary["duplicates_removed"] == summary["rows_before"] - summary["rows_after"] > 0
    after = cat.stats()
    assert all(b["files"] == 1 for b in after)
    # Still every item, once.
    assert cat.search().matched() == 299


def test_dry_run_and_a_high_threshold_change_nothing(tmp_path: pathlib.Path) -> None:
    cat = _twice(tmp_path / "c")
    wh, db = str(tmp_path / "c" / "warehouse"), str(tmp_path / "c" / "earthcatalog.db")
    dry = compact_warehouse(wh, db, dry_run=True)
    assert dry["dry_run"] is True and dry["buckets_compacted"] > 0
    assert dry["files_after"] == dry["files_before"]
    high = compact_warehouse(wh, db, threshold=3)
    assert high["buckets_compacted"] == 0
    assert sum(b["files"] for b in cat.stats()) == dry["files_before"]


def test_use_lock_takes_the_catalog_lock_and_a_held_lock_refuses(tmp_path: pathlib.Path) -> None:
    cat = _twice(tmp_path / "c")
    wh, db = str(tmp_path / "c" / "warehouse"), str(tmp_path / "c" / "earthcatalog.db")
    with cat.lock("someone-else"):
        with pytest.raises(errors.LockHeld, match="someone-else"):
            compact_warehouse(wh, db, use_lock=True)
        # Without the lock flag the Python tool's default (no lock) applies.
        assert compact_warehouse(wh, db, use_lock=False, dry_run=True)["buckets_compacted"] > 0
    assert compact_warehouse(wh, db, use_lock=True)["buckets_compacted"] > 0
    assert not (tmp_path / "c" / ".lock").exists()


def test_the_module_command_prints_the_summary_and_exits_by_outcome(tmp_path: pathlib.Path) -> None:
    _twice(tmp_path / "c")
    wh, db = str(tmp_path / "c" / "warehouse"), str(tmp_path / "c" / "earthcatalog.db")
    cmd = [sys.executable, "-m", "earthcatalog.maintenance.compact", "--warehouse", wh, "--catalog", db]
    dry = subprocess.run([*cmd, "--threshold", "2", "--dry-run"], capture_output=True, text=True, check=False)
    assert dry.returncode == 0, dry.stderr
    assert "Buckets compacted :" in dry.stdout and "dry run" in dry.stdout
    real = subprocess.run([*cmd, "--use-lock"], capture_output=True, text=True, check=False)
    assert real.returncode == 0, real.stderr
    assert "Part files after  :" in real.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "earthcatalog.maintenance.compact", "--warehouse", wh, "--catalog", db + ".nope"],
        capture_output=True, text=True, check=False,
    )
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    usage = subprocess.run([sys.executable, "-m", "earthcatalog.maintenance.compact"], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "--warehouse" in usage.stderr


def test_compaction_of_an_s3_warehouse_and_catalog(tmp_path: pathlib.Path, moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    make_bucket(moto, "compact-bucket")
    base = "s3://compact-bucket/cat"
    cat = ec.open(base=base, storage_options=s3_options(moto))
    for mode in ("new", "all"):
        cat.ingest(str(EXAMPLE / "inventory.csv"), items_root=str(EXAMPLE / "items"), mode=mode, progress=False)
    before = cat.stats()
    assert all(b["files"] == 2 for b in before)
    summary = compact_warehouse(f"{base}/warehouse", f"{base}/earthcatalog.db", use_lock=True)
    assert summary["buckets_compacted"] == len(before)
    assert summary["files_after"] == len(before)
    assert all(b["files"] == 1 for b in cat.stats())
    assert cat.search().matched() == 299
