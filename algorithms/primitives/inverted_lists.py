"""Building a C++ index's inverted lists from stored codes, in two passes over chunks.

The LOPQ indexes (``lopq``'s multi-index, ``ilopq``'s single index) keep their
lists in C++ (``cpp/internal/inverted_lists.h``), filled from the plugin's codes:
first the codes of each cell are counted, then the lists are sized and filled.
Both passes read the codes a chunk at a time and release each chunk's pages, so
codes kept in a file (:func:`benchpq.store.mapped.empty_rows`) are not all
resident at once.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchpq.store.mapped import release_pages

#: rows of codes read at a time
INDEX_CHUNK = 1 << 20


def build_inverted_lists(table, cpp, codes: np.ndarray, cells_of: Callable, ncells: int,
                         suffix: str, dims: dict, chunk_rows: int | None = None) -> None:
    """Fill ``cpp``'s lists from ``codes`` (n, width): ``begin_index(counts)``, then
    ``fill_index_<suffix>(chunk, m, first)`` per chunk, then ``end_index()`` (which
    raises if a fill did not match the counts).

    Args:
        table: the class's :class:`benchpq.algorithms.primitives.native_calls.NativeTable`.
        cells_of: chunk of codes -> (m,) int64 cell ids in [0, ncells).
        dims: the dims the table's calls are checked against.
    """
    rows = chunk_rows or INDEX_CHUNK
    counts = np.zeros(ncells, np.int64)
    for start in range(0, codes.shape[0], rows):
        chunk = codes[start:start + rows]
        counts += np.bincount(cells_of(chunk), minlength=ncells)
        release_pages(chunk)
    table.call(cpp, "begin_index", counts, **dims)
    for start in range(0, codes.shape[0], rows):
        chunk = codes[start:start + rows]
        table.call(cpp, "fill_index_" + suffix, chunk, chunk.shape[0], start, m=chunk.shape[0],
                   **dims)
        release_pages(chunk)
    table.call(cpp, "end_index")


def search_stats(candidates: np.ndarray, cells: np.ndarray) -> dict:
    """``mean_candidates``, ``max_candidates`` and ``mean_cells`` of a search from its
    per-query counts (nq,) of codes scanned and cells visited."""
    return {"mean_candidates": float(candidates.mean()), "max_candidates": int(candidates.max()),
            "mean_cells": float(cells.mean())}


def lists_bytes(n: int, M: int, Ks: int, ncells: int) -> int:
    """Bytes of inverted lists of n codes: per code M fine sub-codes (1 byte each when
    Ks <= 256, else 2) and an int64 id, plus the ncells + 1 int64 offsets."""
    return int(n * (M * (1 if Ks <= 256 else 2) + 8) + 8 * (ncells + 1))
