"""The catalog object of the quick start: ``earthcatalog.open(...)`` and its verbs.

Every verb runs the native library in this process with the GIL released, with the semantics
of the command of the same name (``earthcatalog <verb> --help``), and returns the command's
JSON summary as a dict. Errors raise :mod:`earthcatalog.errors` classes.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Mapping
from typing import Any

from . import _commands, _native
from .errors import InvalidArgument
from .lock import CatalogLock
from .progress import ProgressArg
from .search import ItemSearch, _geometry_text, search_to_arrow

__all__ = ["EarthCatalog", "ingest", "open"]

_MODES = {"new": "new", "all": "all", "auto": "new", "delta": "new", "full": "all"}


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def _store_options(store: Any) -> dict[str, Any]:
    """The settings of an obstore store (its ``config``), for callers of the Python tool's ``store=``."""
    config = getattr(store, "config", None)
    if config is None:
        raise InvalidArgument(
            "store: pass the catalog and warehouse as URLs (base=, catalog=, warehouse=) and S3 "
            "settings as storage_options=; an obstore store is read only for its config"
        )
    return {str(k): v for k, v in dict(config).items() if str(k).lower() not in {"bucket", "aws_bucket", "bucket_name"}}


def _time(value: str | _dt.datetime | _dt.date | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    text = value.isoformat()
    if isinstance(value, _dt.datetime) and value.tzinfo is None:
        text += "Z"
    return text


class EarthCatalog:
    """A catalog (``catalog.db``) and its warehouse, local or on S3.

    Create it with :func:`earthcatalog.open`. Reads (search, files, info, stats) open the
    catalog's current snapshot each time; writes take the catalog lock unless told not to.
    """

    def __init__(
        self,
        catalog: str,
        warehouse: str,
        *,
        hash_index: str | None = None,
        lock_key: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Name the catalog database and warehouse root (URLs or paths); nothing is opened yet.

        ``storage_options`` are the S3 settings given to :func:`open`, handed on to the workers
        of :meth:`bulk_ingest`.
        """
        self.catalog = catalog
        self.warehouse = warehouse
        self.hash_index = hash_index
        self.lock_key = lock_key
        self.storage_options = dict(storage_options) if storage_options else None

    # -- reading ---------------------------------------------------------------------------

    def _reader(self) -> _native.Warehouse:
        return _native.Warehouse.open(self.catalog, self.warehouse)

    def search(self, **params: Any) -> ItemSearch:
        """A lazy item search (pystac-client's ``ItemSearch`` methods: ``items()``,
        ``items_as_dicts()``, ``pages()``, ``item_collection()``, ``matched()``).

        Parameters: ``intersects`` (GeoJSON dict, shapely geometry, GeoJSON or WKT text),
        ``bbox``, ``datetime`` (``"a/b"``, open ends ``..``), ``ids``, ``collections``,
        ``filter`` (CQL2 text, JSON dict or ``cql2.Expr``), ``filter_lang``, ``sortby``,
        ``fields``, ``max_items``, ``limit``.
        """
        return ItemSearch(self._reader, params)

    def search_to_arrow(self, *, batch_rows: int = 10_000, **params: Any) -> Any:
        """The search's items as a ``pyarrow.Table`` with the table's columns (geometry WKB),
        or, without pyarrow, an object any Arrow consumer reads through ``__arrow_c_stream__``
        (``polars.from_arrow``, ``duckdb.arrow``). Same parameters as :meth:`search`."""
        return search_to_arrow(self._reader, params, batch_rows)

    def search_files(
        self,
        geom: Any = None,
        start_datetime: str | _dt.datetime | _dt.date | None = None,
        end_datetime: str | _dt.datetime | _dt.date | None = None,
    ) -> list[str]:
        """Data files that can hold items intersecting ``geom`` in the time range (manifests only).

        ``geom``: a GeoJSON dict, a shapely geometry, GeoJSON or WKT text, or ``None`` for all.
        """
        geometry = None if geom is None else _geometry_text(geom, "geom")
        return self._reader().files(geometry, _time(start_datetime), _time(end_datetime))

    def cells_for_geometry(self, geom: Any) -> list[str]:
        """The partition keys (H3 cells or region ids) a geometry touches."""
        return self._reader().cells(_geometry_text(geom, "geom"))

    def cell_list_sql(self, geom: Any) -> str:
        """``grid_partition IN ('…', …)`` for the cells of ``geom`` (for SQL over the warehouse)."""
        cells = self.cells_for_geometry(geom)
        if not cells:
            return "grid_partition IN (NULL)"
        return "grid_partition IN (" + ", ".join(f"'{c}'" for c in cells) + ")"

    def search_uris(self, asset: str = "data", **params: Any) -> Any:
        """``(id, uri)`` of each matching item's ``asset`` href: a pandas DataFrame when pandas is
        installed (the Python tool's return), else a list of dicts. Same parameters as :meth:`search`."""
        rows = []
        for item in self.search(**params, fields="id,assets").items_as_dicts():
            href = (item.get("assets") or {}).get(asset, {}).get("href")
            rows.append({"id": item["id"], "uri": href})
        try:
            import pandas as pd  # type: ignore[import-untyped, import-not-found, unused-ignore]
        except ImportError:
            return rows
        return pd.DataFrame(rows, columns=["id", "uri"])

    def duck_search(self, **params: Any) -> Any:
        """The search's rows as a pandas DataFrame (the Python tool's ``duck_search``; read
        natively, no DuckDB): ``search_to_arrow(...).to_pandas()``. Needs pyarrow and pandas."""
        return self.search_to_arrow(**params).to_pandas()

    def info(self) -> dict[str, Any]:
        """The catalog report: grid, snapshot, totals, years, top buckets, schema."""
        return dict(json.loads(self._reader().info()))

    def stats(self) -> list[dict[str, Any]]:
        """Rows, files and bytes per (cell, year): ``cell``, ``year``, ``rows``, ``files``,
        ``bytes``, and the Python tool's names of the same (``grid_partition``, ``row_count``,
        ``file_count``, ``total_bytes``)."""
        out = []
        for b in json.loads(self._reader().stats()):
            b.update(grid_partition=b["cell"], row_count=b["rows"], file_count=b["files"], total_bytes=b["bytes"])
            out.append(b)
        return out

    def unique_item_count(self) -> int:
        """Items in the hash index (one row per ingested id)."""
        return int(self.index_stats().get("rows") or 0)

    # -- writing ---------------------------------------------------------------------------

    def _target(self) -> dict[str, _commands.Flag]:
        return {"warehouse": self.warehouse, "catalog": self.catalog}

    def ingest(
        self,
        inventory_path: str,
        *,
        mode: str = "new",
        since: str | _dt.datetime | _dt.date | None = None,
        limit: int | None = None,
        chunk_size: int | None = None,
        update_hash_index: bool = True,
        use_lock: bool = True,
        items_root: str | None = None,
        concurrency: int | None = None,
        resolution: int | None = None,
        layout: str | None = None,
        suffix: str | None = None,
        commit_every: int | None = None,
        report_dir: str | None = None,
        progress: ProgressArg = None,
    ) -> dict[str, Any]:
        """Ingest the STAC items an inventory lists (CSV, CSV.gz, Parquet or manifest.json).

        ``mode``: ``"new"`` skips ids the hash index holds, ``"all"`` fetches every key (the
        Python tool's ``"auto"``/``"delta"`` and ``"full"``; ``"full"`` never drops the table).
        The dict has the run's full summary plus the Python tool's keys ``items_processed``,
        ``rows_written`` and ``files_registered``; ``failed`` counts items not ingested (listed
        in the failures report).
        """
        if mode not in _MODES:
            raise InvalidArgument(f"mode: {mode!r} is not one of {', '.join(sorted(_MODES))}")
        options: dict[str, _commands.Flag] = {
            "inventory": inventory_path,
            **self._target(),
            "mode": _MODES[mode],
            "since": _time(since),
            "limit": limit,
            "chunk_items": chunk_size,
            "no_hash_index": not update_hash_index,
            "hash_index": self.hash_index,
            "no_lock": not use_lock,
            "lock_key": self.lock_key,
            "items_root": items_root,
            "concurrency": concurrency,
            "resolution": resolution,
            "layout": layout,
            "suffix": suffix,
            "commit_every": commit_every,
            "report_dir": report_dir,
        }
        _, summary = _commands.run(["ingest"], options, progress=progress)
        result = dict(summary)
        result.setdefault("items_processed", result.get("items", 0))
        result.setdefault("rows_written", result.get("rows", 0))
        result.setdefault("files_registered", result.get("files", 0))
        return result

    def compact(
        self,
        threshold: int = 2,
        dry_run: bool = False,
        *,
        use_lock: bool = True,
        max_rows_per_file: int | None = None,
        parallelism: int | None = None,
        progress: ProgressArg = None,
    ) -> dict[str, Any]:
        """Merge each bucket's files (at least ``threshold`` of them) into one, dedup by id,
        replace them in one commit. Keys include ``buckets_scanned``, ``buckets_compacted``,
        ``files_before`` and ``files_after``."""
        from .maintenance.compact import compact_warehouse

        return compact_warehouse(
            self.warehouse,
            self.catalog,
            threshold=threshold,
            use_lock=use_lock,
            dry_run=dry_run,
            lock_key=self.lock_key,
            max_rows_per_file=max_rows_per_file,
            parallelism=parallelism,
            progress=progress,
        )

    def repair(self, *, dry_run: bool = False, use_lock: bool = True) -> dict[str, Any]:
        """Rebuild the table's file list from the warehouse (missing files out, unregistered in)."""
        options = {**self._target(), "dry_run": dry_run, "no_lock": not use_lock, "lock_key": self.lock_key}
        return dict(_commands.run(["repair"], options)[1])

    def delta(
        self,
        inventory: str,
        delta_prefix: str,
        *,
        date: str | _dt.date | None = None,
        dry_run: bool = False,
        force: bool = False,
        suffix: str | None = None,
    ) -> dict[str, Any]:
        """Today's inventory keys the hash index does not hold, written to
        ``<delta_prefix>/pending/delta_<date>.parquet`` (the Python tool's delta file)."""
        options: dict[str, _commands.Flag] = {
            "inventory": inventory,
            "hash_index": self.hash_index,
            "catalog": self.catalog,
            "delta_prefix": delta_prefix,
            "date": date.isoformat() if isinstance(date, _dt.date) else date,
            "suffix": suffix,
            "dry_run": dry_run,
            "force": force,
        }
        return dict(_commands.run(["delta"], options)[1])

    def diff(
        self,
        current: str,
        previous: str,
        out: str,
        *,
        removed: str | None = None,
        max_memory: str | None = None,
        suffix: str | None = None,
        progress: ProgressArg = None,
    ) -> dict[str, Any]:
        """Keys new or changed between two inventory days (to ``out``), and removed ones."""
        options: dict[str, _commands.Flag] = {
            "current": current,
            "previous": previous,
            "out": out,
            "removed": removed,
            "max_memory": max_memory,
            "suffix": suffix,
        }
        return dict(_commands.run(["diff"], options, progress=progress)[1])

    def gc(
        self,
        removed: str,
        *,
        dry_run: bool = False,
        use_lock: bool = True,
        suffix: str | None = None,
        parallelism: int | None = None,
        progress: ProgressArg = None,
    ) -> dict[str, Any]:
        """Remove the rows of items whose source keys are listed in ``removed`` (one commit)."""
        options: dict[str, _commands.Flag] = {
            **self._target(),
            "removed": removed,
            "suffix": suffix,
            "hash_index": self.hash_index,
            "no_lock": not use_lock,
            "lock_key": self.lock_key,
            "dry_run": dry_run,
            "parallelism": parallelism,
        }
        return dict(_commands.run(["gc"], options, progress=progress)[1])

    def _index(self, verb: str, extra: Mapping[str, _commands.Flag] | None = None) -> tuple[int, dict[str, Any]]:
        options: dict[str, _commands.Flag] = {**self._target(), "hash_index": self.hash_index, **(extra or {})}
        code, summary = _commands.run(["index", verb], options)
        return code, dict(summary)

    def index_stats(self) -> dict[str, Any]:
        """Rows, size and snapshot of the hash index, against the table's current snapshot."""
        return self._index("stats")[1]

    def index_verify(self) -> dict[str, Any]:
        """Ids in the table but not the index and vice versa (``consistent`` says whether they agree)."""
        code, summary = self._index("verify")
        summary.setdefault("consistent", code == 0)
        return summary

    def index_rebuild(self, *, use_lock: bool = True) -> dict[str, Any]:
        """Rebuild the hash index from the ``id`` column of the table's live files."""
        return self._index("rebuild", {"no_lock": not use_lock, "lock_key": self.lock_key})[1]

    def lock(self, owner: str, ttl_hours: float = 12) -> CatalogLock:
        """The catalog lock as a context manager (renewed while held, released on exit)."""
        return CatalogLock(self.catalog, owner, ttl_hours, lock_key=self.lock_key)

    def bulk_ingest(
        self,
        inventory_path: str,
        *,
        client: Any = None,
        create_client: Callable[[], Any] | None = None,
        map_shards: int = 8,
        reduce_shards: int = 2,
        staging: str | None = None,
        mode: str = "new",
        since: str | _dt.datetime | _dt.date | None = None,
        limit: int | None = None,
        update_hash_index: bool = True,
        items_root: str | None = None,
        retries: int = 2,
    ) -> dict[str, Any]:
        """Ingest a large inventory by running the backfill stages on an executor.

        ``client``: a ``dask.distributed.Client`` or any ``concurrent.futures.Executor``
        (``create_client``, the Python tool's spelling, is called to make one and closed after).
        Plans in this process, runs every map shard then every reduce shard as tasks (each calls
        the native module in its worker), then commits here. See :mod:`earthcatalog.bulk`.
        """
        from .bulk import bulk_ingest

        return bulk_ingest(
            self,
            inventory_path,
            client=client,
            create_client=create_client,
            map_shards=map_shards,
            reduce_shards=reduce_shards,
            staging=staging,
            mode=_MODES.get(mode, mode),
            since=_time(since),
            limit=limit,
            update_hash_index=update_hash_index,
            items_root=items_root,
            retries=retries,
            s3=self.storage_options,
        )

    @property
    def grid_type(self) -> str:
        """The table's grid type (``h3`` or ``geojson``)."""
        return self._reader().grid()[0]

    @property
    def grid_resolution(self) -> int | None:
        """The H3 resolution (``None`` for a GeoJSON grid)."""
        return self._reader().grid()[1]

    def __repr__(self) -> str:
        return f"EarthCatalog(catalog={self.catalog!r}, warehouse={self.warehouse!r})"


def open(  # noqa: A001 - the Python tool's name
    base: str | None = None,
    *,
    catalog: str | None = None,
    warehouse: str | None = None,
    hash_index: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    store: Any = None,
    anonymous: bool | None = None,
    lock_key: str | None = None,
) -> EarthCatalog:
    """Open the catalog at ``base`` (``base/earthcatalog.db`` and ``base/warehouse``, the Python
    tool's layout), or at explicit ``catalog`` and ``warehouse`` URLs.

    ``storage_options``: S3 settings by object_store's keys (``region``, ``endpoint``,
    ``access_key_id``, ``secret_access_key``, ``session_token``, ``allow_http``, ``anonymous``);
    they apply to every S3 location this process opens from now on. ``store``: an obstore store
    is accepted for its ``config`` (the Python tool's argument); ``anonymous=True`` sends
    unsigned requests. Nothing is read until a verb is called.
    """
    if base is None and (catalog is None or warehouse is None):
        raise InvalidArgument("base: give base=, or both catalog= and warehouse=")
    settings: dict[str, Any] = {}
    if store is not None:
        settings.update(_store_options(store))
    if storage_options:
        settings.update(storage_options)
    if anonymous is not None:
        settings["anonymous"] = anonymous
    if settings:
        _native.configure_s3(settings)
    return EarthCatalog(
        catalog or _join(base or "", "earthcatalog.db"),
        warehouse or _join(base or "", "warehouse"),
        hash_index=hash_index,
        lock_key=lock_key,
        storage_options=settings or None,
    )


def ingest(
    inventory_path: str,
    *,
    base: str | None = None,
    catalog: str | None = None,
    warehouse: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    store: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Open a catalog and ingest an inventory (the Python tool's ``earthcatalog.ingest``)."""
    cat = open(base, catalog=catalog, warehouse=warehouse, storage_options=storage_options, store=store)
    return cat.ingest(inventory_path, **options)
