"""Running a command of the native command line with ``--json`` and reading its summary."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from . import _native
from .progress import resolve

Flag = str | int | float | bool | Sequence[str] | _dt.datetime | _dt.date | None


def flags(options: Mapping[str, Flag]) -> list[str]:
    """``{"dry_run": True, "threshold": 2, "ids": ["a", "b"]}`` -> ``--dry-run --threshold 2 --ids a,b``.

    ``None`` and ``False`` add nothing; datetimes are written in ISO 8601.
    """
    out: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, (_dt.datetime, _dt.date)):
            out += [flag, value.isoformat()]
        elif isinstance(value, (list, tuple)):
            out += [flag, ",".join(str(v) for v in value)]
        else:
            out += [flag, str(value)]
    return out


def run(
    command: Sequence[str],
    options: Mapping[str, Flag],
    *,
    progress: Any = False,
    json_flag: bool = True,
) -> tuple[int, Any]:
    """Run ``earthcatalog <command> <flags> --json`` in this process (the GIL released).

    ``progress``: see :mod:`earthcatalog.progress`. Returns the exit code (0, or 3 when some
    items or buckets failed) and the parsed summary.
    A failure raises its :mod:`earthcatalog.errors` class.
    """
    argv = [*command, *flags(options)]
    if json_flag:
        argv.append("--json")
    code, out = _native.run_command(argv, resolve(progress))
    text = out.strip()
    return code, (json.loads(text) if text else None)
