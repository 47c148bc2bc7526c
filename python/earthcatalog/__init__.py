"""earthcatalog: STAC items into an H3-partitioned, Iceberg-registered GeoParquet catalog.

The Python API of the ``earthcatalog`` tool, run by a native (Rust) library:

>>> import earthcatalog as ec  # doctest: +SKIP
>>> catalog = ec.open(base="s3://bucket/catalog")  # doctest: +SKIP
>>> catalog.ingest("inventory.csv")  # doctest: +SKIP
>>> for item in catalog.search(bbox=[-50, 60, -40, 70], datetime="2020/2021").items():  # doctest: +SKIP
...     print(item.id)

The documented maintenance entry point is kept:
``from earthcatalog.maintenance.compact import compact_warehouse``.
"""

from __future__ import annotations

from . import errors
from ._native import __version__
from .catalog import EarthCatalog, ingest, open
from .errors import EarthCatalogError
from .lock import CatalogLock, CatalogLocked, S3Lock
from .search import ItemSearch

__all__ = [
    "CatalogLock",
    "CatalogLocked",
    "EarthCatalog",
    "EarthCatalogError",
    "ItemSearch",
    "S3Lock",
    "__version__",
    "errors",
    "ingest",
    "open",
]
