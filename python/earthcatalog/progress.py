"""Progress of long calls in notebooks and scripts.

A verb's ``progress`` argument is ``None`` (the default: bars on stderr when it is a terminal,
notebook bars inside Jupyter), ``False``, ``True`` (bars on stderr), or any object with the
methods of :class:`Reporter`, which then receives every event. :class:`NotebookProgress` draws
``tqdm`` bars (``tqdm.auto``: widgets in Jupyter, text elsewhere) when tqdm is installed.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

__all__ = ["NotebookProgress", "ProgressArg", "Reporter", "resolve"]


class Reporter(Protocol):
    """What receives progress events (called from the native library, the GIL taken per call)."""

    def phase(self, name: str, total: int | None) -> None:
        """A phase starts (``total`` items, or ``None`` when unknown)."""

    def advance(self, n: int) -> None:
        """``n`` more items of the phase are done (calls are batched, about ten a second)."""

    def message(self, text: str) -> None:
        """A status line for the current phase."""

    def finish_phase(self) -> None:
        """The phase is over."""


class NotebookProgress:
    """One ``tqdm.auto`` bar per phase."""

    def __init__(self) -> None:
        """Use ``tqdm.auto`` (raises ImportError without tqdm)."""
        from tqdm.auto import tqdm  # type: ignore[import-untyped, import-not-found, unused-ignore]

        self._tqdm = tqdm
        self._bar: Any = None

    def phase(self, name: str, total: int | None) -> None:
        """Open a bar for the phase."""
        self.finish_phase()
        self._bar = self._tqdm(total=total, desc=name, unit="item")

    def advance(self, n: int) -> None:
        """Move the bar."""
        if self._bar is not None:
            self._bar.update(n)

    def message(self, text: str) -> None:
        """Show ``text`` beside the bar."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def finish_phase(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    get = getattr(shell, "get_ipython", None)
    return bool(get and get() is not None)


def resolve(progress: Any) -> Any:
    """What the native call gets for ``progress``: ``True``/``False`` or a reporter object."""
    if progress is None:
        try:
            if sys.stderr.isatty():
                return True
        except (AttributeError, ValueError):
            pass
        if _in_notebook():
            try:
                return NotebookProgress()
            except ImportError:
                return False
        return False
    return progress


ProgressArg = bool | Reporter | None
"""The type of every verb's ``progress`` argument."""
