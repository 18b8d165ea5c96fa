"""The read hook: which data files a dataset load opened.

:func:`benchpq.datasets.formats.read_array` (every array file) and the
ann-benchmarks reader call :func:`note_read` with each file they open; while a
:func:`tracking_reads` block runs, the files are collected, so that
:mod:`benchpq.datasets.fingerprint` can hash exactly what a dataset was read from.
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from pathlib import Path

_reads: contextvars.ContextVar[list | None] = contextvars.ContextVar("benchpq_reads",
                                                                    default=None)


def note_read(path) -> None:
    """Called by a reader for every data file it opens (no-op unless tracking)."""
    reads = _reads.get()
    if reads is not None:
        reads.append(Path(path).resolve())


@contextmanager
def tracking_reads():
    """Collect the files read inside the block into the yielded list."""
    reads: list[Path] = []
    token = _reads.set(reads)
    try:
        yield reads
    finally:
        _reads.reset(token)
