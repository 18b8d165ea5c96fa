"""Reading a faiss inverted-file index's lists in tests."""
import faiss
import numpy as np


def inverted_lists(ivf) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every inverted list of a faiss IndexIVF as (ids, codes) numpy copies."""
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    out = []
    for c in range(ivf.nlist):
        size = lists.list_size(c)
        ids = faiss.rev_swig_ptr(lists.get_ids(c), size).copy() if size else np.empty(0)
        codes = faiss.rev_swig_ptr(lists.get_codes(c), size * lists.code_size).copy() \
            if size else np.empty(0)
        out.append((ids, codes))
    return out
