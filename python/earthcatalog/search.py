"""Lazy search results with pystac-client's reading methods.

:meth:`earthcatalog.EarthCatalog.search` returns an :class:`ItemSearch`; nothing is read until
one of its methods is called, and each call runs the search again (like pystac-client).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from . import _native
from .errors import InvalidArgument

__all__ = ["ItemSearch", "search_arguments"]

_KNOWN = {
    "intersects",
    "bbox",
    "datetime",
    "ids",
    "collections",
    "filter",
    "filter_lang",
    "sortby",
    "max_items",
    "limit",
    "fields",
    "with_grid_partition",
}


def _geometry_text(value: Any, arg: str) -> str:
    """GeoJSON text of a geometry given as a dict, a ``__geo_interface__`` object, GeoJSON or WKT text."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return json.dumps(value)
    geo = getattr(value, "__geo_interface__", None)
    if geo is not None:
        return json.dumps(geo)
    raise InvalidArgument(
        f"{arg}: expected a GeoJSON dict, an object with __geo_interface__ (e.g. shapely), or GeoJSON/WKT text"
    )


def _datetime_text(value: Any) -> str:
    """``"a/b"``, a datetime, or a ``(start, end)`` pair (``None`` for an open end) as interval text."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise InvalidArgument("datetime: a pair (start, end) is expected")
        return "/".join(".." if v is None else _one_datetime(v) for v in value)
    return _one_datetime(value)


def _one_datetime(value: Any) -> str:
    iso = getattr(value, "isoformat", None)
    if iso is None:
        raise InvalidArgument(f"datetime: cannot read {value!r} as a date or time")
    text = str(iso())
    if getattr(value, "tzinfo", "absent") is None:
        text += "Z"  # a naive datetime is UTC, as STAC search reads it
    return text


def _sortby_text(value: Any) -> str:
    """``"+datetime,-platform"``, a list of such strings, or pystac-client's ``[{"field", "direction"}]``."""
    if isinstance(value, str):
        return value
    parts: list[str] = []
    for entry in value:
        if isinstance(entry, str):
            parts.append(entry)
        elif isinstance(entry, Mapping):
            sign = "-" if str(entry.get("direction", "asc")).lower().startswith("desc") else "+"
            parts.append(sign + str(entry["field"]))
        else:
            raise InvalidArgument(f"sortby: cannot read {entry!r}")
    return ",".join(parts)


def _fields_text(value: Any) -> str:
    """``"id,-assets"``, a list of such strings, or ``{"include": [...], "exclude": [...]}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        inc = [str(f) for f in value.get("include", [])]
        exc = ["-" + str(f) for f in value.get("exclude", [])]
        return ",".join(inc + exc)
    return ",".join(str(f) for f in value)


def _list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v for v in (s.strip() for s in value.split(",")) if v]
    return [str(v) for v in value]


def search_arguments(params: Mapping[str, Any]) -> dict[str, Any]:
    """The native search arguments of pystac-client-style keyword arguments.

    Unknown names raise :class:`~earthcatalog.errors.InvalidArgument` instead of being ignored.
    """
    unknown = sorted(set(params) - _KNOWN)
    if unknown:
        raise InvalidArgument(
            f"{unknown[0]}: not a search parameter (known: {', '.join(sorted(_KNOWN))})"
        )
    out: dict[str, Any] = {}
    if params.get("intersects") is not None:
        out["intersects"] = _geometry_text(params["intersects"], "intersects")
    if params.get("bbox") is not None:
        bbox = params["bbox"]
        if isinstance(bbox, str):
            bbox = [float(v) for v in bbox.split(",")]
        out["bbox"] = [float(v) for v in bbox]
    if params.get("datetime") is not None:
        out["datetime"] = _datetime_text(params["datetime"])
    out["ids"] = _list(params.get("ids"))
    out["collections"] = _list(params.get("collections"))
    flt = params.get("filter")
    if flt is not None:
        if isinstance(flt, Mapping):
            out["filter"] = json.dumps(flt)
        elif hasattr(flt, "to_json") and not isinstance(flt, str):
            out["filter"] = json.dumps(flt.to_json())  # a cql2.Expr
        else:
            out["filter"] = str(flt)
    if params.get("filter_lang") is not None:
        out["filter_lang"] = str(params["filter_lang"])
    if params.get("sortby") is not None:
        out["sortby"] = _sortby_text(params["sortby"])
    for key in ("max_items", "limit"):
        if params.get(key) is not None:
            out[key] = int(params[key])
    if params.get("fields") is not None:
        out["fields"] = _fields_text(params["fields"])
    if params.get("with_grid_partition"):
        out["with_grid_partition"] = True
    return out


class ItemSearch:
    """A deferred search, read like pystac-client's ``ItemSearch``.

    Semantics are the STAC API item search's: an item matches a ``datetime`` interval when its
    ``start_datetime``/``end_datetime`` interval (else its ``datetime``) overlaps it; ``filter``
    is CQL2 (text, JSON dict, or a ``cql2.Expr``); ``sortby`` and ``fields`` as in the API.
    Each item is returned once, its newest version.
    """

    def __init__(self, reader: Any, params: Mapping[str, Any]) -> None:
        """Hold the parameters (validated now) and a way to open the warehouse (when read)."""
        self._reader = reader
        self._params = dict(params)
        self._arguments = search_arguments(self._params)
        self._last_stats: dict[str, int] | None = None

    def get_parameters(self) -> dict[str, Any]:
        """The search parameters as given."""
        return dict(self._params)

    def _pages(self, page_size: int, **override: Any) -> Iterator[list[dict[str, Any]]]:
        warehouse = self._reader()
        pages = warehouse.search(**{**self._arguments, **override}, page_size=page_size)
        try:
            for page in pages:
                yield json.loads(page)
        finally:
            self._last_stats = json.loads(pages.stats())

    def pages_as_dicts(self, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Pages as GeoJSON FeatureCollection dicts of up to ``page_size`` items."""
        for page in self._pages(page_size):
            yield {"type": "FeatureCollection", "features": page, "numberReturned": len(page)}

    def pages(self, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Pages as lists of up to ``page_size`` item dicts (the Python tool's ``pages()``)."""
        yield from self._pages(page_size)

    def pages_as_item_collections(self, page_size: int = 1000) -> Iterator[Any]:
        """Pages as ``pystac.ItemCollection`` (pystac-client's ``pages()``; needs pystac)."""
        import pystac

        for page in self._pages(page_size):
            yield pystac.ItemCollection([pystac.Item.from_dict(i, preserve_dict=False) for i in page])

    def items_as_dicts(self) -> Iterator[dict[str, Any]]:
        """Every matching item as a STAC item dict."""
        for page in self._pages(1000):
            yield from page

    def items(self) -> Iterator[Any]:
        """Every matching item: ``pystac.Item`` when pystac is installed, else a dict."""
        try:
            import pystac
        except ImportError:
            yield from self.items_as_dicts()
            return
        for item in self.items_as_dicts():
            yield pystac.Item.from_dict(item, preserve_dict=False)

    def item_collection_as_dict(self) -> dict[str, Any]:
        """Every matching item in one GeoJSON FeatureCollection dict."""
        features = list(self.items_as_dicts())
        return {"type": "FeatureCollection", "features": features, "numberReturned": len(features)}

    def item_collection(self) -> Any:
        """Every matching item in one ``pystac.ItemCollection`` (or a FeatureCollection dict)."""
        try:
            import pystac
        except ImportError:
            return self.item_collection_as_dict()
        return pystac.ItemCollection(
            [pystac.Item.from_dict(i, preserve_dict=False) for i in self.items_as_dicts()]
        )

    def matched(self) -> int:
        """How many items match (counted by running the search for ids only, ignoring ``max_items``)."""
        override: dict[str, Any] = {"fields": "id", "max_items": None, "limit": None, "sortby": None}
        return sum(len(page) for page in self._pages(10_000, **override))

    def stats(self) -> dict[str, int] | None:
        """Counters of the last read: files, row groups (and those skipped), rows scanned and matched."""
        return self._last_stats

    def __iter__(self) -> Iterator[Any]:
        return self.items()

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"ItemSearch({shown})"


def search_to_arrow(reader: Any, params: Mapping[str, Any], batch_rows: int = 10_000) -> Any:
    """Matching items as Arrow: a ``pyarrow.Table`` when pyarrow is installed, else an object
    exporting the Arrow PyCapsule stream (``__arrow_c_stream__``) for any Arrow consumer."""
    args = search_arguments(params)
    for name in ("fields", "with_grid_partition"):
        if name in args:
            raise InvalidArgument(f"{name}: not supported by search_to_arrow (rows have the table's columns)")
    batches = reader().search_arrow(**args, batch_rows=batch_rows)
    try:
        import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return batches
    return pa.RecordBatchReader.from_stream(batches).read_all()
