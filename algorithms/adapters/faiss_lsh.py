"""faiss IndexLSH as a Searcher: random-projection sign bits, Hamming search (Charikar 2002)."""
import faiss

from benchpq.api import Searcher
from benchpq.checks import as_matrix, check_k, check_positive_int
from benchpq.registry import register


@register("faiss_lsh")
class FaissLSH(Searcher):
    """nbits sign bits per vector, of random projections if rotate_data (else nbits <= d), with
    learnt per-bit thresholds if train_thresholds (else 0). Distances: Hamming, as float32."""

    def __init__(self, nbits: int = 64, rotate_data: bool = True, train_thresholds: bool = True):
        self.nbits = check_positive_int(nbits, "nbits")
        self.rotate_data, self.train_thresholds = bool(rotate_data), bool(train_thresholds)
        self.index = None

    def fit(self, x):
        x = as_matrix(x, "learn")
        self.index = faiss.IndexLSH(x.shape[1], self.nbits, self.rotate_data,
                                    self.train_thresholds)
        self.index.train(x)
        return self

    def add(self, x):
        self.index.add(as_matrix(x, "base", dim=self.index.d))

    def search(self, queries, k):
        k = check_k(k, self.index.ntotal)
        return self.index.search(as_matrix(queries, "query", dim=self.index.d), k)

    code_bits = property(lambda self: self.nbits)
    codes_bytes = property(lambda self: self.index.ntotal * self.index.code_size if self.index
                           else 0)
    model_bytes = property(lambda self: 4 * self.nbits * (self.index.d * self.rotate_data
                                                          + self.train_thresholds) if self.index
                           else 0)
