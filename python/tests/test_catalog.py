"""The quick start's catalog object: open, ingest, search, Arrow, files, info, stats, lock."""

from __future__ import annotations

import json
import pathlib
import subprocess
import threading

import pyarrow as pa
import pystac
import pytest

import earthcatalog as ec
from earthcatalog import errors

from conftest import BIN_DIR, EXAMPLE, ingest_example

GREENLAND = {"type": "Polygon", "coordinates": [[[-55, 60], [-20, 60], [-20, 84], [-55, 84], [-55, 60]]]}


def cli_ids(cat: ec.EarthCatalog, *args: str) -> list[str]:
    """Ids the command line's search returns for the same catalog and flags."""
    out = subprocess.run(
        [str(BIN_DIR / "earthcatalog"), "search", "--catalog", cat.catalog, "--format", "ndjson", *args],
        capture_output=True, text=True, check=True,
    )
    return [json.loads(line)["id"] for line in out.stdout.splitlines() if line.strip()]


def test_open_names_the_python_tool_layout_and_explicit_locations(tmp_path: pathlib.Path) -> None:
    cat = ec.open(base=str(tmp_path))
    assert cat.catalog == f"{tmp_path}/earthcatalog.db"
    assert cat.warehouse == f"{tmp_path}/warehouse"
    other = ec.open(catalog="s3://b/c.db", warehouse="s3://b/wh")
    assert (other.catalog, other.warehouse) == ("s3://b/c.db", "s3://b/wh")
    with pytest.raises(errors.InvalidArgument, match="base"):
        ec.open(catalog="x.db")

    class Store:  # an obstore store: only its config is read
        config = {"bucket": "b", "skip_signature": True}

    assert ec.open(base=str(tmp_path), store=Store()).catalog.endswith("earthcatalog.db")
    with pytest.raises(errors.InvalidArgument, match="store"):
        ec.open(base=str(tmp_path), store=object())


def test_ingest_returns_the_python_tool_keys_and_the_full_summary(example: ec.EarthCatalog) -> None:
    info = example.info()
    assert info["rows"] == 479 and info["hash_index_rows"] == 299
    assert example.unique_item_count() == 299


def test_ingest_modes_map_to_ours_and_unknown_ones_are_refused(tmp_path: pathlib.Path) -> None:
    cat = ec.open(base=str(tmp_path))
    first = cat.ingest(str(EXAMPLE / "day1.csv"), items_root=str(EXAMPLE / "items"), progress=False)
    assert first["items_processed"] == first["items"] == 280
    assert first["files_registered"] == first["files"] > 0
    assert first["rows_written"] == first["rows"]
    again = cat.ingest(str(EXAMPLE / "day1.csv"), items_root=str(EXAMPLE / "items"), mode="delta", progress=False)
    assert again["skipped_known"] == 280 and again["items"] == 0
    full = cat.ingest(str(EXAMPLE / "day1.csv"), items_root=str(EXAMPLE / "items"), mode="full", limit=10, progress=False)
    assert full["items"] == 10  # "full" fetches again; it never drops the table
    assert cat.info()["rows"] > first["rows"]
    with pytest.raises(errors.InvalidArgument, match="mode"):
        cat.ingest(str(EXAMPLE / "day1.csv"), mode="everything")


def test_native_work_releases_the_gil(tmp_path: pathlib.Path) -> None:
    counter = 0
    done = threading.Event()

    def spin() -> None:
        nonlocal counter
        while not done.is_set():
            counter += 1

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        start = counter
        ingest_example(tmp_path)
        during = counter - start
    finally:
        done.set()
        thread.join()
    # With the GIL held for the whole native call, the other thread would not run at all.
    assert during > 10_000, during


def test_search_items_are_pystac_items_and_match_the_command_line(example: ec.EarthCatalog) -> None:
    s = example.search(intersects=GREENLAND, datetime="2018-01-01/2019-12-31")
    items = list(s.items())
    assert items and all(isinstance(i, pystac.Item) for i in items)
    ids = sorted(i.id for i in items)
    assert ids == sorted(cli_ids(example, "--intersects", json.dumps(GREENLAND), "--datetime", "2018-01-01/2019-12-31"))
    assert len(ids) == len(set(ids))
    assert s.matched() == len(ids)
    stats = s.stats()
    assert stats is not None and stats["files"] > 0
    dicts = list(example.search(ids=ids[:3]).items_as_dicts())
    assert sorted(d["id"] for d in dicts) == ids[:3]
    assert all(isinstance(d, dict) and d["type"] == "Feature" for d in dicts)


def test_interval_items_match_an_overlapping_datetime_query(example: ec.EarthCatalog) -> None:
    items = list(example.search(datetime="2019-06-01T00:00:00Z").items_as_dicts())
    assert items
    for item in items:
        p = item["properties"]
        if p.get("start_datetime") and p.get("end_datetime"):
            assert p["start_datetime"][:10] <= "2019-06-01" <= p["end_datetime"][:10]
    assert sorted(i["id"] for i in items) == sorted(cli_ids(example, "--datetime", "2019-06-01T00:00:00Z"))


def test_filter_sortby_fields_and_max_items(example: ec.EarthCatalog) -> None:
    text = list(example.search(filter="percent_valid_pixels > 80 AND platform = 'LC08'").items_as_dicts())
    as_json = list(
        example.search(
            filter={"op": "and", "args": [
                {"op": ">", "args": [{"property": "percent_valid_pixels"}, 80]},
                {"op": "=", "args": [{"property": "platform"}, "LC08"]},
            ]}
        ).items_as_dicts()
    )
    assert text and sorted(i["id"] for i in text) == sorted(i["id"] for i in as_json)
    assert all(i["properties"]["percent_valid_pixels"] > 80 for i in text)
    ordered = list(example.search(sortby=[{"field": "percent_valid_pixels", "direction": "desc"}], max_items=5).items_as_dicts())
    values = [i["properties"]["percent_valid_pixels"] for i in ordered]
    assert len(values) == 5 and values == sorted(values, reverse=True)
    assert values == [i["properties"]["percent_valid_pixels"] for i in example.search(sortby="-percent_valid_pixels", max_items=5).items_as_dicts()]
    slim = next(iter(example.search(fields={"include": ["id"], "exclude": ["assets"]}, max_items=1).items_as_dicts()))
    assert "assets" not in slim and slim["id"]


def test_pages_and_item_collection(example: ec.EarthCatalog) -> None:
    pages = list(example.search(max_items=25).pages(page_size=10))
    assert [len(p) for p in pages] == [10, 10, 5]
    assert all(isinstance(i, dict) for p in pages for i in p)
    collections = list(example.search(max_items=25).pages_as_item_collections(page_size=10))
    assert [len(p) for p in collections] == [10, 10, 5]
    assert all(isinstance(p, pystac.ItemCollection) for p in collections)
    dict_pages = list(example.search(max_items=25).pages_as_dicts(page_size=10))
    assert [p["numberReturned"] for p in dict_pages] == [10, 10, 5]
    collection = example.search(bbox=[-180, -90, 180, 90], max_items=7).item_collection()
    assert isinstance(collection, pystac.ItemCollection) and len(collection) == 7


def test_search_to_arrow_is_a_table_of_the_table_columns_and_any_consumer_reads_the_capsule(example: ec.EarthCatalog) -> None:
    table = example.search_to_arrow(intersects=GREENLAND)
    assert isinstance(table, pa.Table)
    ids = sorted(cli_ids(example, "--intersects", json.dumps(GREENLAND)))
    assert sorted(table.column("id").to_pylist()) == ids
    assert table.schema.field("geometry").metadata[b"ARROW:extension:name"] == b"geoarrow.wkb"
    assert "percent_valid_pixels" in table.schema.names
    raw = example._reader().search_arrow(batch_rows=50)
    assert raw.num_rows() == 299
    reader = pa.RecordBatchReader.from_stream(raw)
    assert sum(b.num_rows for b in reader) == 299
    with pytest.raises(RuntimeError, match="consumed"):
        pa.RecordBatchReader.from_stream(raw)
    with pytest.raises(errors.InvalidArgument, match="fields"):
        example.search_to_arrow(fields="id")


def test_search_files_cells_info_and_stats(example: ec.EarthCatalog) -> None:
    files = example.search_files(GREENLAND, start_datetime="2018-01-01", end_datetime="2018-12-31")
    all_files = example.search_files()
    assert files and set(files) < set(all_files)
    cells = example.cells_for_geometry({"type": "Point", "coordinates": [-45, 70]})
    assert len(cells) == 1 and len(cells[0]) == 15
    stats = example.stats()
    assert sum(b["rows"] for b in stats) == 479
    assert all(b["row_count"] == b["rows"] and b["grid_partition"] == b["cell"] for b in stats)
    sql = example.cell_list_sql({"type": "Point", "coordinates": [-45, 70]})
    assert sql == f"grid_partition IN ('{cells[0]}')"
    uris = example.search_uris(ids=["nope"])
    assert len(uris) == 0
    some = example.search_uris(intersects=GREENLAND, max_items=3)
    assert len(some) == 3
    assert sum(b["files"] for b in stats) == len(all_files)
    info = example.info()
    assert info["grid_type"] == "h3" and example.grid_type == "h3" and example.grid_resolution == 1


def test_the_daily_loop(tmp_path: pathlib.Path) -> None:
    cat = ec.open(base=str(tmp_path / "c"))
    items = str(EXAMPLE / "items")
    cat.ingest(str(EXAMPLE / "day1.csv"), items_root=items, progress=False)
    delta = cat.delta(str(EXAMPLE / "day2.csv"), str(tmp_path / "delta"), date="2026-11-25")
    assert delta["new_items"] == 20
    diff = cat.diff(str(EXAMPLE / "day2.csv"), str(EXAMPLE / "day1.csv"), str(tmp_path / "new.parquet"),
                    removed=str(tmp_path / "gone.parquet"))
    assert (diff["added"], diff["changed"], diff["removed"]) == (20, 5, 5)
    ingested = cat.ingest(str(tmp_path / "new.parquet"), items_root=items, mode="all", progress=False)
    assert ingested["items"] == 25
    gone = cat.gc(str(tmp_path / "gone.parquet"))
    assert gone["ids_removed"] == 5
    compacted = cat.compact()
    assert compacted["buckets_compacted"] > 0
    verify = cat.index_verify()
    assert verify["consistent"] and verify["missing_from_index"] == 0
    rebuilt = cat.index_rebuild()
    assert rebuilt["rows"] == cat.index_stats()["rows"]
    assert cat.repair(dry_run=True)["dry_run"] is True


def test_the_lock_is_a_context_manager_shared_with_the_command_line(fresh: ec.EarthCatalog, tmp_path: pathlib.Path) -> None:
    from earthcatalog.lock import S3Lock, lock_status

    with fresh.lock("notebook", ttl_hours=1) as held:
        assert held.held and held.payload is not None and held.payload["owner"] == "notebook"
        status = lock_status(fresh.catalog)
        assert status["held"] and status["owner"] == "notebook"
        with pytest.raises(errors.LockHeld, match="notebook"):
            fresh.ingest(str(EXAMPLE / "day1.csv"), items_root=str(EXAMPLE / "items"))
        with pytest.raises(ec.CatalogLocked):
            S3Lock("other", key=held.url).acquire()
    assert not lock_status(fresh.catalog)["held"]
    with pytest.raises(ValueError):
        S3Lock("x")
    # A lock object dropped while held gives the lock back.
    dropped = fresh.lock("forgetful")
    dropped.acquire()
    assert lock_status(fresh.catalog)["held"]
    del dropped
    import gc

    gc.collect()
    assert not lock_status(fresh.catalog)["held"]


class Recorder:
    """A progress reporter that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def phase(self, name: str, total: int | None) -> None:
        self.events.append(("phase", name))

    def advance(self, n: int) -> None:
        self.events.append(("advance", n))

    def message(self, text: str) -> None:
        self.events.append(("message", text))

    def finish_phase(self) -> None:
        self.events.append(("finish", None))


def test_progress_events_reach_a_python_reporter(tmp_path: pathlib.Path) -> None:
    rec = Recorder()
    cat = ec.open(base=str(tmp_path / "c"))
    cat.ingest(str(EXAMPLE / "inventory.csv"), items_root=str(EXAMPLE / "items"), progress=rec)
    phases = [v for k, v in rec.events if k == "phase"]
    assert phases, rec.events
    advanced = sum(int(v) for k, v in rec.events if k == "advance")  # type: ignore[call-overload]
    assert advanced >= 300, rec.events
    assert rec.events[-1][0] == "finish"
    quiet = Recorder()
    cat.compact(progress=False)
    assert quiet.events == []


def test_datetime_works_inside_a_cql2_filter(example: ec.EarthCatalog) -> None:
    after = list(example.search(filter="datetime > TIMESTAMP('2020-01-01T00:00:00Z')").items_as_dicts())
    assert after and all(i["properties"]["datetime"] > "2020-01-01" for i in after)


def test_module_level_ingest_and_the_remaining_search_readers(tmp_path: pathlib.Path, example: ec.EarthCatalog) -> None:
    summary = ec.ingest(str(EXAMPLE / "day1.csv"), base=str(tmp_path / "m"), items_root=str(EXAMPLE / "items"), progress=False)
    assert summary["items_processed"] == 280
    s = example.search(ids=["nope"], max_items=3)
    assert s.get_parameters() == {"ids": ["nope"], "max_items": 3}
    assert "ids=['nope']" in repr(s)
    assert s.item_collection_as_dict() == {"type": "FeatureCollection", "features": [], "numberReturned": 0}
    assert list(s) == []
    some = list(iter(example.search(max_items=2)))
    assert len(some) == 2 and all(isinstance(i, pystac.Item) for i in some)
    frame = example.duck_search(intersects=GREENLAND)
    assert sorted(frame["id"]) == sorted(cli_ids(example, "--intersects", json.dumps(GREENLAND)))
    uris = example.search_uris(intersects=GREENLAND, max_items=3)
    assert list(uris.columns) == ["id", "uri"] and all(u.startswith("http") or u.startswith("s3") for u in uris["uri"])
    assert "EarthCatalog(" in repr(example)


def test_notebook_progress_draws_one_tqdm_bar_per_phase() -> None:
    from earthcatalog.progress import NotebookProgress, resolve

    bars = NotebookProgress()
    bars.phase("fetch", 10)
    bars.advance(4)
    bars.message("4 of 10")
    assert bars._bar is not None and bars._bar.n == 4 and bars._bar.total == 10
    bars.phase("write", None)
    bars.advance(2)
    assert bars._bar.n == 2
    bars.finish_phase()
    assert bars._bar is None
    assert resolve(False) is False and resolve(True) is True and resolve(bars) is bars
    assert resolve(None) is False  # not a terminal (pytest captures stderr), not a notebook
