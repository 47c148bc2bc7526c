"""Compaction: ``compact_warehouse`` and ``python -m earthcatalog.maintenance.compact``.

The documented API of the Python tool, run natively: each bucket (cell, year) with at least
``threshold`` live files is merged into one sorted file with one row per id (newest version),
and every replacement lands in one Iceberg commit. Unlike the Python tool, the warehouse and
catalog may be ``s3://`` URLs, and ``use_lock=True`` takes the catalog lock (``.lock`` beside
the catalog, the Python tool's lock object) with no configuration module.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import _commands
from ..progress import ProgressArg

__all__ = ["compact_warehouse", "main"]


def compact_warehouse(
    warehouse_path: str,
    catalog_path: str,
    threshold: int = 2,
    use_lock: bool = False,
    dry_run: bool = False,
    *,
    lock_key: str | None = None,
    max_rows_per_file: int | None = None,
    parallelism: int | None = None,
    progress: ProgressArg = None,
) -> dict[str, Any]:
    """Compact every bucket with at least ``threshold`` files and commit the replacements.

    Parameters
    ----------
    warehouse_path:
        Warehouse root: a path, ``file://`` or ``s3://bucket/prefix`` URL.
    catalog_path:
        The SQLite catalog (``catalog.db``): a path or an ``s3://`` URL.
    threshold:
        Compact buckets with at least this many files (default 2).
    use_lock:
        Hold the catalog lock for the whole run.
    dry_run:
        Report what would be compacted; write and delete nothing.
    lock_key, max_rows_per_file, parallelism, progress:
        The lock object (default ``.lock`` beside the catalog), the largest output file in rows,
        buckets merged at once (default 4), and progress bars (default: when stderr is a terminal).

    Returns
    -------
    dict
        ``buckets_scanned``, ``buckets_compacted``, ``files_before``, ``files_after`` (the
        Python tool's keys) and more: rows and bytes before and after, duplicates removed,
        failed buckets, missing and unregistered files, elapsed seconds.
    """
    options: dict[str, _commands.Flag] = {
        "warehouse": warehouse_path,
        "catalog": catalog_path,
        "threshold": threshold,
        "use_lock": use_lock,
        "no_lock": not use_lock,
        "lock_key": lock_key,
        "dry_run": dry_run,
        "max_rows_per_file": max_rows_per_file,
        "parallelism": parallelism,
    }
    if use_lock:
        del options["no_lock"]
    else:
        del options["use_lock"]
    _, summary = _commands.run(["compact"], options, progress=progress)
    return dict(summary)


def main(argv: list[str] | None = None) -> int:
    """``python -m earthcatalog.maintenance.compact``: the Python tool's flags; prints a summary.

    Exit status: 0 done, 1 failed, 2 bad arguments, 3 some buckets failed, 4 catalog locked.
    """
    from ..errors import EarthCatalogError, InvalidArgument, LockHeld, NotFound, Refused

    parser = argparse.ArgumentParser(
        prog="python -m earthcatalog.maintenance.compact",
        description="Compact an earthcatalog warehouse: merge each bucket's files and commit the replacements.",
    )
    parser.add_argument("--warehouse", required=True, help="Warehouse root (path or s3:// URL).")
    parser.add_argument("--catalog", required=True, help="Catalog database (path or s3:// URL).")
    parser.add_argument(
        "--threshold", type=int, default=2, help="Compact buckets with at least this many files (default: 2)."
    )
    parser.add_argument("--use-lock", action="store_true", help="Hold the catalog lock while compacting.")
    parser.add_argument("--dry-run", action="store_true", help="Report what would be compacted; change nothing.")
    args = parser.parse_args(argv)
    try:
        summary = compact_warehouse(
            warehouse_path=args.warehouse,
            catalog_path=args.catalog,
            threshold=args.threshold,
            use_lock=args.use_lock,
            dry_run=args.dry_run,
        )
    except EarthCatalogError as err:
        print(f"error: {err}", file=sys.stderr)
        if isinstance(err, LockHeld):
            return 4
        return 2 if isinstance(err, (InvalidArgument, NotFound, Refused)) else 1
    print(
        "\nSummary" + (" (dry run: nothing written or deleted)" if summary.get("dry_run") else "") + "\n"
        f"  Buckets scanned   : {summary['buckets_scanned']}\n"
        f"  Buckets compacted : {summary['buckets_compacted']}\n"
        f"  Part files before : {summary['files_before']}\n"
        f"  Part files after  : {summary['files_after']}"
    )
    failed = summary.get("failed_buckets") or []
    for failure in failed:
        print(f"  failed bucket {failure.get('bucket')}: {failure.get('reason')}", file=sys.stderr)
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
