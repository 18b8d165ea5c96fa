"""``python -m benchpq``: the ``benchpq`` command."""
from .sweep.cli import main

main()
