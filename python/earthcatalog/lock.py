"""The catalog lock: the Python tool's lock object, taken with a create-only write.

The lock is ``.lock`` beside the catalog database (or any object named by ``lock_key``), holding
``owner``, ``pid``, ``hostname``, ``acquired`` and ``ttl_hours`` exactly as the Python tool
writes it, so either tool sees the other's lock. A held lock is renewed in the background until
released; a fresh lock held by someone else raises :class:`~earthcatalog.errors.LockHeld`
(also importable as ``CatalogLocked``, the Python tool's name).
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

from . import _native
from .errors import LockHeld

CatalogLocked = LockHeld
"""The Python tool's name of :class:`~earthcatalog.errors.LockHeld`."""

__all__ = ["CatalogLock", "CatalogLocked", "S3Lock", "lock_status"]


class CatalogLock:
    """A context manager holding the catalog lock.

    >>> with CatalogLock("s3://bucket/catalog/earthcatalog.db", owner="nightly"):  # doctest: +SKIP
    ...     pass
    """

    def __init__(
        self,
        catalog: str,
        owner: str,
        ttl_hours: float = 12,
        *,
        lock_key: str | None = None,
    ) -> None:
        """Describe the lock of ``catalog`` (``.lock`` beside it, or ``lock_key``); nothing is taken yet."""
        self.catalog = catalog
        self.owner = owner
        self.ttl_hours = ttl_hours
        self.lock_key = lock_key
        self._held: _native.HeldLock | None = None

    def acquire(self) -> None:
        """Take the lock; raises :class:`~earthcatalog.errors.LockHeld` when someone else holds it."""
        if self._held is not None and self._held.held():
            return
        self._held = _native.HeldLock.acquire(
            self.catalog, self.owner, float(self.ttl_hours), self.lock_key
        )

    def release(self) -> None:
        """Release the lock if this object holds it (a lock taken over by someone else is left alone)."""
        if self._held is not None:
            self._held.release()
            self._held = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._held is not None and self._held.held()

    @property
    def url(self) -> str | None:
        """The lock object's URL once taken."""
        return self._held.url if self._held is not None else None

    @property
    def payload(self) -> dict[str, Any] | None:
        """The lock payload written when it was taken."""
        return json.loads(self._held.payload) if self._held is not None else None

    def __enter__(self) -> CatalogLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        # A lock object dropped while held (a notebook cell re-run) gives the lock back instead of
        # leaving it to expire.
        try:
            self.release()
        except Exception:  # noqa: BLE001 - nothing can be raised from a finalizer
            pass

    def __repr__(self) -> str:
        state = "held" if self.held else "not held"
        return f"CatalogLock(catalog={self.catalog!r}, owner={self.owner!r}, {state})"


class S3Lock(CatalogLock):
    """The Python tool's ``S3Lock(owner=..., ttl_hours=..., key=...)`` spelled with a catalog URL.

    Where the Python tool took an obstore ``store`` and a ``key`` in it, this takes the lock
    object's URL as ``key`` (or the catalog URL as ``catalog``, the lock being ``.lock`` beside it).
    """

    def __init__(
        self,
        owner: str,
        ttl_hours: float = 12,
        *,
        catalog: str | None = None,
        key: str | None = None,
    ) -> None:
        """Describe the lock ``key`` (a URL), or the one beside ``catalog``."""
        if catalog is None and key is None:
            raise ValueError("S3Lock needs catalog= (a catalog URL) or key= (the lock object's URL)")
        super().__init__(catalog or "", owner, ttl_hours, lock_key=key)


def lock_status(catalog: str, *, lock_key: str | None = None) -> dict[str, Any]:
    """Who holds the lock of ``catalog``, since when, until when, and whether it is stale."""
    from ._commands import run

    target = {"lock_key": lock_key} if lock_key else {"catalog": catalog}
    _, status = run(["lock", "status"], target)
    return dict(status)
