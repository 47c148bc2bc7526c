"""Exceptions raised by earthcatalog.

Every error of the native library is raised as one of these classes, all subclasses of
:class:`EarthCatalogError`, with the library's own message (which names the object, key,
partition or argument that failed). The class is decided by the kind of failure, the same rule
that decides the command line's exit code (2 for :class:`InvalidArgument`, :class:`NotFound`
and :class:`Refused`; 4 for :class:`LockHeld`; 1 for the rest).
"""

from __future__ import annotations

__all__ = [
    "CatalogError",
    "CommitConflict",
    "DataError",
    "EarthCatalogError",
    "InvalidArgument",
    "LockHeld",
    "LockLost",
    "NotFound",
    "Refused",
    "StorageError",
    "TaskError",
]


class EarthCatalogError(Exception):
    """Base class of every earthcatalog error."""


class InvalidArgument(EarthCatalogError, ValueError):
    """A bad argument, location, geometry or configuration: fix the call."""


class NotFound(EarthCatalogError, LookupError):
    """Something named does not exist (a catalog, a snapshot, a file)."""


class Refused(EarthCatalogError):
    """The operation refused to run because it could lose or hide data; the message says what to do."""


class LockHeld(EarthCatalogError, RuntimeError):
    """The catalog lock is held by someone else (the Python tool's ``CatalogLocked``)."""


class LockLost(EarthCatalogError):
    """The catalog lock was taken over or deleted while this process held it."""


class CommitConflict(EarthCatalogError):
    """Someone else committed between our read and our write; retrying may succeed."""


class StorageError(EarthCatalogError, OSError):
    """Object store or local file I/O failed."""


class CatalogError(EarthCatalogError):
    """The Iceberg catalog or its database failed, or is not as earthcatalog leaves it."""


class DataError(EarthCatalogError):
    """An input (inventory, Parquet, Arrow, JSON or YAML) could not be read or written."""


class TaskError(EarthCatalogError):
    """A worker task failed (or a test injected a fault)."""
