"""``python -m earthcatalog``: the ``earthcatalog`` command line."""

from ._cli import main

main()
