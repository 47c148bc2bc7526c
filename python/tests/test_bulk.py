"""bulk_ingest: the backfill stages on an executor (threads, and a real Dask LocalCluster)."""

from __future__ import annotations

import os
import pathlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow.parquet as pq
import pytest

import earthcatalog as ec
from earthcatalog import errors

from conftest import EXAMPLE, ingest_example

ITEMS = str(EXAMPLE / "items")
INVENTORY = str(EXAMPLE / "inventory.csv")


def rows(cat: ec.EarthCatalog) -> list[tuple[str, str, str]]:
    """(id, cell, year) of every row of every live file, read with pyarrow."""
    out = []
    for url in cat.search_files():
        path = url.removeprefix("file://")
        parts = dict(p.split("=", 1) for p in pathlib.Path(path).parts if "=" in p)
        for i in pq.read_table(path, columns=["id"]).column("id").to_pylist():
            out.append((i, parts["grid_partition"], parts["year"]))
    return sorted(out)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    """The rows of ingest + compact of the example, every bucket merged (threshold 1: a bucket
    written as one file by ingest can hold two versions of an id, which a merge resolves, as a
    backfill's reduce does)."""
    cat = ingest_example(tmp_path_factory.mktemp("reference"))
    cat.compact(threshold=1)
    return rows(cat)


class FlakyExecutor(ThreadPoolExecutor):
    """Fails the first submission of every map shard whose index is odd."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.failed: list[list[str]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        argv = args[0]
        if argv[1] == "map" and int(argv[argv.index("--shard") + 1]) % 2 == 1 and argv not in self.failed:
            self.failed.append(argv)
            fut: Future[Any] = Future()
            fut.set_exception(ConnectionError("worker lost"))
            return fut
        return super().submit(fn, *args, **kwargs)


def test_bulk_ingest_on_threads_retries_failed_shards_and_equals_ingest_and_compact(
    tmp_path: pathlib.Path, reference: list[tuple[str, str, str]]
) -> None:
    cat = ec.open(base=str(tmp_path / "bulk"))
    with FlakyExecutor() as pool:
        result = cat.bulk_ingest(INVENTORY, client=pool, map_shards=4, reduce_shards=2, items_root=ITEMS)
    assert len(pool.failed) == 2  # shards 1 and 3 failed once and ran again
    assert len(result["map"]) == 4 and len(result["reduce"]) == 2
    assert rows(cat) == reference
    assert cat.index_verify()["consistent"]


def test_bulk_ingest_gives_up_after_its_retries_and_names_the_shard(tmp_path: pathlib.Path) -> None:
    class Broken(ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            argv = args[0]
            if argv[1] == "map" and argv[argv.index("--shard") + 1] == "0":
                fut: Future[Any] = Future()
                fut.set_exception(ConnectionError("gone"))
                return fut
            return super().submit(fn, *args, **kwargs)

    cat = ec.open(base=str(tmp_path / "bulk"))
    with Broken(max_workers=2) as pool, pytest.raises(errors.EarthCatalogError, match="shard\\(s\\) 0 failed after 2"):
        cat.bulk_ingest(INVENTORY, client=pool, map_shards=2, reduce_shards=1, items_root=ITEMS, retries=1,
                        staging=str(tmp_path / "staging"))
    # The staging keeps its plan: the same call resumes and finishes.
    with ThreadPoolExecutor(max_workers=2) as pool:
        cat.bulk_ingest(INVENTORY, client=pool, items_root=ITEMS, staging=str(tmp_path / "staging"))
    assert cat.search().matched() == 299
    with pytest.raises(errors.InvalidArgument, match="client"):
        cat.bulk_ingest(INVENTORY)


def test_bulk_ingest_takes_the_python_tools_create_client_and_closes_what_it_made(
    tmp_path: pathlib.Path, reference: list[tuple[str, str, str]]
) -> None:
    made: list[ThreadPoolExecutor] = []

    def create_client() -> ThreadPoolExecutor:
        made.append(ThreadPoolExecutor(max_workers=2))
        return made[-1]

    cat = ec.open(base=str(tmp_path / "bulk"))
    cat.bulk_ingest(INVENTORY, create_client=create_client, map_shards=3, reduce_shards=1, items_root=ITEMS)
    assert len(made) == 1 and made[0]._shutdown
    assert rows(cat) == reference


def _arm_abort() -> int:
    """In one worker process: abort (as kill -9 would) when a map shard is about to finish."""
    os.environ["EARTHCATALOG_FAULT"] = "backfill.map.before_done"
    os.environ["EARTHCATALOG_FAULT_MODE"] = "abort"
    return os.getpid()


def test_bulk_ingest_on_a_dask_local_cluster_survives_a_killed_worker(
    tmp_path: pathlib.Path, reference: list[tuple[str, str, str]]
) -> None:
    distributed = pytest.importorskip("dask.distributed")
    cat = ec.open(base=str(tmp_path / "bulk"))
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        workers = sorted(client.scheduler_info()["workers"])
        doomed = client.run(_arm_abort, workers=[workers[0]])[workers[0]]
        result = cat.bulk_ingest(INVENTORY, client=client, map_shards=6, reduce_shards=2, items_root=ITEMS)
        pids_after = set(client.run(os.getpid).values())
    assert doomed not in pids_after, "the armed worker was never killed: no map shard ran on it"
    assert len(result["map"]) == 6
    assert rows(cat) == reference
    assert cat.index_verify()["consistent"]
