"""Filling a faiss IVF index's inverted lists from its standalone codes, each list sized once.

faiss's ``add`` appends every vector to its list, a ``std::vector`` that doubles when
full: a list holds up to twice its codes and ids, and the spare capacity a reused heap
block brings is resident (a quarter more than the lists' bytes at 4M vectors in 1,024
lists). The IVF adapters instead keep what ``sa_encode`` gives while adding (the list
number, then the code faiss's ``add`` stores: the same bytes, checked in the tests), in a
buffer that is a memory-mapped file for a large base, and fill the lists once all vectors
are added: count the codes of each list, size each list once, copy a chunk at a time.
"""
from __future__ import annotations

import faiss
import numpy as np

from benchpq.checks import InputError
from benchpq.store.mapped import release_pages

#: rows of standalone codes read at a time
FILL_CHUNK = 1 << 20


def list_numbers(codes: np.ndarray, coarse_code_size: int) -> np.ndarray:
    """(n,) int64 list numbers of standalone codes (n, sa_code_size) uint8: faiss writes a
    list number little-endian on the first ``coarse_code_size`` bytes."""
    weights = 256 ** np.arange(coarse_code_size, dtype=np.int64)
    return codes[:, :coarse_code_size].astype(np.int64) @ weights


def fill_inverted_lists(ivf, codes: np.ndarray, chunk_rows: int = FILL_CHUNK) -> None:
    """Append standalone codes (n, ivf.sa_code_size()) uint8 to ``ivf``'s lists with ids
    ``ivf.ntotal`` .. ``ivf.ntotal + n - 1``, in order, as ``ivf.add`` of the vectors they
    encode would; ``ivf.ntotal`` grows by n.

    Two passes over chunks of ``codes`` (each chunk's pages released if it is mapped):
    the codes of each list are counted, every list is resized once to its final size,
    then each chunk's codes are copied into their lists, grouped by list.

    Raises InputError if a list number is out of range (codes of another index).
    """
    ivf = faiss.downcast_index(ivf)
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    if not isinstance(lists, faiss.ArrayInvertedLists):
        raise InputError(f"faiss IVF: cannot fill inverted lists of type {type(lists).__name__}")
    nlist, ccs = int(ivf.nlist), int(ivf.coarse_code_size())
    if codes.ndim != 2 or codes.shape[1] != ccs + ivf.code_size:
        raise InputError(f"faiss IVF: standalone codes must be (n, {ccs + ivf.code_size}), "
                         f"got {codes.shape}")
    counts = np.zeros(nlist, np.int64)
    for start in range(0, codes.shape[0], chunk_rows):
        chunk = codes[start:start + chunk_rows]
        numbers = list_numbers(chunk, ccs)
        if numbers.size and (numbers.min() < 0 or numbers.max() >= nlist):
            raise InputError(f"faiss IVF: a code names list {int(numbers.max())}, "
                             f"the index has {nlist}")
        counts += np.bincount(numbers, minlength=nlist)
        release_pages(chunk)
    filled = np.array([lists.list_size(int(c)) for c in range(nlist)], np.int64)
    for c in np.flatnonzero(counts):
        lists.resize(int(c), int(filled[c] + counts[c]))
    first = int(ivf.ntotal)
    for start in range(0, codes.shape[0], chunk_rows):
        chunk = codes[start:start + chunk_rows]
        numbers = list_numbers(chunk, ccs)
        order = np.argsort(numbers, kind="stable")
        grouped = np.ascontiguousarray(chunk[order, ccs:])
        ids = order + (first + start)
        bounds = np.searchsorted(numbers[order], np.arange(nlist + 1))
        for c in np.flatnonzero(np.diff(bounds)):
            lo, hi = int(bounds[c]), int(bounds[c + 1])
            lists.update_entries(int(c), int(filled[c]), hi - lo, faiss.swig_ptr(ids[lo:hi]),
                                 faiss.swig_ptr(grouped[lo:hi]))
            filled[c] += hi - lo
        release_pages(chunk)
    ivf.ntotal = first + codes.shape[0]
