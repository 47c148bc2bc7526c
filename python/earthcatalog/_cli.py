"""The ``earthcatalog`` command installed with the package: the same command line as the binary."""

from __future__ import annotations

import signal
import sys

from . import _native


def main(argv: list[str] | None = None) -> int:
    """Run the ``earthcatalog`` command line on ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit code when called; as a console script it exits with it (0 success,
    1 failure, 2 usage error, 3 some items failed, 4 catalog locked).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # Ctrl-C stops the command as it stops the binary (Python's handler would only run after
    # the native call returns).
    if argv is None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    code = _native.main(args)
    if argv is None:
        sys.exit(code)
    return code
