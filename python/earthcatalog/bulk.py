"""Backfills on an executor: the backfill stages (plan, map, reduce, commit) as tasks.

``bulk_ingest`` plans in the calling process, submits every map shard and then every reduce
shard to an executor (a ``dask.distributed.Client`` locally or on Coiled, or any
``concurrent.futures.Executor``), and commits in the calling process. Each task calls the native
module in its worker (``earthcatalog.bulk.run_stage``), so workers need this package installed
and read/write access to the staging prefix, the items and the warehouse.

Recovery: stages are idempotent per shard (a shard that finished says so and does nothing), so a
failed task is submitted again, up to ``retries`` times; a task lost with its worker is
rescheduled by Dask itself. No scheduler of our own runs here.
"""

from __future__ import annotations

import datetime as _dt
import time

import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import _commands, _native
from .errors import EarthCatalogError, InvalidArgument

if TYPE_CHECKING:
    from .catalog import EarthCatalog

__all__ = ["bulk_ingest", "run_stage"]


def run_stage(argv: Sequence[str], s3: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one backfill stage (``["backfill", "map", "--staging", ..., "--shard", "3"]``) in this
    process and return its JSON summary; the function every executor task calls."""
    if s3:
        _native.configure_s3(s3)
    code, summary = _commands.run(list(argv), {}, progress=False)
    result = dict(summary or {})
    result["exit_code"] = code
    return result


def _default_staging(catalog: EarthCatalog) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{catalog.warehouse.rstrip('/')}_staging/bulk_{stamp}_{uuid.uuid4().hex[:8]}"


def _submit(executor: Any, argv: list[str], s3: dict[str, Any] | None) -> Any:
    """Submit one stage; a Dask client is told the task is not pure, so a resubmission of the same
    stage runs again instead of returning the failed result."""
    if type(executor).__module__.startswith("distributed"):
        return executor.submit(run_stage, argv, s3, pure=False)
    return executor.submit(run_stage, argv, s3)


def _run_all(executor: Any, tasks: list[list[str]], retries: int, s3: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Submit every task, resubmit failures up to ``retries`` times, return the summaries in order."""
    results: dict[int, dict[str, Any]] = {}
    pending = list(range(len(tasks)))
    errors: dict[int, BaseException] = {}
    for _attempt in range(retries + 1):
        if not pending:
            break
        futures = {i: _submit(executor, tasks[i], s3) for i in pending}
        failed = []
        for i, fut in futures.items():
            try:
                results[i] = fut.result()
            except Exception as err:  # a task failed: submitted again below
                errors[i] = err
                failed.append(i)
        pending = failed
    if pending:
        first = pending[0]
        raise EarthCatalogError(
            f"{' '.join(tasks[first][:2])} shard(s) {', '.join(str(i) for i in pending)} failed after "
            f"{retries + 1} attempt(s); the staging keeps what finished (run bulk_ingest again with "
            f"staging= to resume): {errors[first]}"
        ) from errors[first]
    return [results[i] for i in range(len(tasks))]


def bulk_ingest(
    catalog: EarthCatalog,
    inventory_path: str,
    *,
    client: Any = None,
    create_client: Callable[[], Any] | None = None,
    map_shards: int = 8,
    reduce_shards: int = 2,
    staging: str | None = None,
    mode: str = "new",
    since: str | None = None,
    limit: int | None = None,
    update_hash_index: bool = True,
    items_root: str | None = None,
    retries: int = 2,
    s3: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Plan, map, reduce and commit a backfill of ``inventory_path`` into ``catalog``.

    Returns ``{"staging", "plan", "map", "reduce", "commit", "seconds"}``: each stage's summary
    and wall seconds. Passing the ``staging`` of an interrupted run resumes it (its plan is
    reused; finished shards are skipped).
    """
    if client is None and create_client is None:
        raise InvalidArgument("client: give an executor (a dask.distributed.Client or concurrent.futures executor) or create_client=")
    if map_shards < 1 or reduce_shards < 1:
        raise InvalidArgument("map_shards: map_shards and reduce_shards must be at least 1")
    owned = None
    if client is None and create_client is not None:
        owned = client = create_client()
    try:
        resume = staging is not None and _has_plan(staging)
        staging = staging or _default_staging(catalog)
        plan: dict[str, Any] | None = None
        seconds: dict[str, float] = {}
        started = time.perf_counter()
        if not resume:
            options: dict[str, _commands.Flag] = {
                "inventory": inventory_path,
                "staging": staging,
                "warehouse": catalog.warehouse,
                "catalog": catalog.catalog,
                "map_shards": map_shards,
                "reduce_shards": reduce_shards,
                "hash_index": catalog.hash_index,
                "no_hash_index": not update_hash_index,
                "mode": mode,
                "since": since,
                "limit": limit,
                "items_root": items_root,  # recorded in the plan: tasks need only the staging
            }
            _, plan = _commands.run(["backfill", "plan"], options)
            map_shards = int((plan or {}).get("map_shards", map_shards))
            reduce_shards = int((plan or {}).get("reduce_shards", reduce_shards))
        else:
            status = _status(staging)
            map_shards = int(status["map"]["shards"])
            reduce_shards = int(status["reduce"]["shards"])
        seconds["plan"] = time.perf_counter() - started
        # A resumed plan keeps its own items root unless one is given here.
        root = ["--items-root", items_root] if items_root and resume else []
        started = time.perf_counter()
        maps = _run_all(
            client,
            [["backfill", "map", "--staging", staging, "--shard", str(i), *root] for i in range(map_shards)],
            retries,
            s3,
        )
        seconds["map"] = time.perf_counter() - started
        started = time.perf_counter()
        reduces = _run_all(
            client,
            [["backfill", "reduce", "--staging", staging, "--shard", str(j)] for j in range(reduce_shards)],
            retries,
            s3,
        )
        seconds["reduce"] = time.perf_counter() - started
        started = time.perf_counter()
        _, commit = _commands.run(["backfill", "commit", "--staging", staging], {})
        seconds["commit"] = time.perf_counter() - started
        return {
            "staging": staging,
            "plan": plan,
            "map": maps,
            "reduce": reduces,
            "commit": commit,
            "seconds": seconds,
        }
    finally:
        if owned is not None:
            if hasattr(owned, "close"):
                owned.close()
            elif hasattr(owned, "shutdown"):
                owned.shutdown()


def _status(staging: str) -> dict[str, Any]:
    _, status = _commands.run(["backfill", "status", "--staging", staging], {})
    return dict(status or {})


def _has_plan(staging: str) -> bool:
    try:
        _status(staging)
    except EarthCatalogError:
        return False
    return True


