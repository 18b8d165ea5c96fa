"""faiss's inverted multi-index with PQ on residuals: plugin ``faiss_imi``.

Babenko & Lempitsky, "The inverted multi-index", CVPR 2012 (Multi-D-ADC):
the coarse quantizer is a product quantizer of the two halves of the vector
with 2**coarse_bits centroids each (faiss ``MultiIndexQuantizer``), so there
are 2**(2 * coarse_bits) cells; residuals to the cell's coarse reconstruction
are encoded by a PQ of M sub-quantizers of 2**nbits codewords (Jegou, Douze,
Schmid, TPAMI 2011). Built with ``index_factory(d, "IMI2x<coarse_bits>,PQ<M>x<nbits>")``.

Search visits cells in increasing coarse distance (the multi-sequence
algorithm, inside ``MultiIndexQuantizer.search``), at most ``nprobe`` cells
(default: all cells, capped at 65,536), and stops once ``max_codes`` codes
were scanned (faiss cuts the last list at exactly max_codes; None: no limit).
This is the candidate budget of ``lopq``'s ``quota``. The number of codes
actually scanned per query is read from ``faiss.cvar.indexIVF_stats`` (reset
before each search) and reported as ``mean_candidates`` by ``extra_metrics``.

Vectors are float32 (n, d), d even; codes are faiss's standalone codes
(``sa_encode``): the list number on ceil(2 * coarse_bits / 8) bytes, then the
PQ code, uint8 (n, sa_code_size). ``code_bits`` counts the fine code, M *
nbits, as ``faiss_ivfpq``'s does (the cell is implied by the inverted list);
``extra_metrics`` also gives ``cell_bits`` (2 * coarse_bits) and ``total_bits``.
"""
from __future__ import annotations

import faiss

from benchpq.api import UNSET
from benchpq.checks import InputError, as_matrix, check_k, check_positive_int
from benchpq.metric_table import Metric, declare
from benchpq.registry import register

from ..primitives.metric_specs import CELL_BITS, FINE_BITS, TOTAL_BITS
from .faiss_quantizers import IVF_SEARCH_METRICS, FaissProductIndex, search_with_stats

MAX_DEFAULT_NPROBE = 1 << 16


@register("faiss_imi")
class FaissIMI(FaissProductIndex):
    """faiss IndexIVFPQ over a MultiIndexQuantizer (IMI2x<coarse_bits>,PQ<M>x<nbits>).

    Args:
        M: fine sub-quantizers (divides d); nbits: bits per sub-code (1 .. 16).
        coarse_bits: bits per half of the coarse product quantizer, 1 .. 12
            (V = 2**coarse_bits centroids per half).
        max_codes: codes scanned per query at most (faiss ``max_codes``); None: no limit.
        nprobe: cells visited at most; None: all 4**coarse_bits cells, capped at 65,536.
        seed: k-means seed of the coarse and fine quantizers (None: faiss's).
    """

    metric_specs = declare(
        *IVF_SEARCH_METRICS.values(), FINE_BITS, CELL_BITS, TOTAL_BITS,
        Metric("cells_probed_max", "Cells a query may visit at most (nprobe; default all "
               "cells, capped at 65,536).", display="Max cells probed", kind="count",
               scope="search"))

    def __init__(self, M: int = 8, nbits: int = 8, coarse_bits: int = 4,
                 max_codes: int | None = 1000, nprobe: int | None = None,
                 seed: int | None = None):
        super().__init__(M, nbits, seed)
        self.coarse_bits = check_positive_int(coarse_bits, "coarse_bits", 1, 12)
        self.max_codes = None if max_codes is None else check_positive_int(max_codes,
                                                                           "max_codes")
        self.nprobe = None if nprobe is None else check_positive_int(nprobe, "nprobe", 1,
                                                                     self.ncells)
        self.last_search: dict = {}

    @property
    def V(self) -> int:
        """Coarse centroids per half."""
        return 1 << self.coarse_bits

    @property
    def ncells(self) -> int:
        return self.V * self.V

    @property
    def factory(self) -> str:
        return f"IMI2x{self.coarse_bits},PQ{self.M}x{self.nbits}"

    def _ivf(self):
        """The IndexIVFPQ inside the index."""
        return faiss.downcast_index(faiss.extract_index_ivf(self.trained()))

    def _build(self, dim):
        index = faiss.index_factory(dim, self.factory)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        # index_factory turns on polysemous training (a codeword permutation for Hamming
        # filtering, unused by this search and ~10 s on 10k vectors); faiss_ivfpq's
        # IndexIVFPQ constructor does not: off, so that training times compare.
        ivf.do_polysemous_training = False
        if self.seed is not None:
            ivf.pq.cp.seed = int(self.seed)
            faiss.downcast_index(ivf.quantizer).pq.cp.seed = int(self.seed)
        return index

    def _min_train(self) -> int:
        return max(self.V, 2 ** self.nbits)

    def fit(self, x):
        x = as_matrix(x, "learn")
        if x.shape[1] % 2:
            raise InputError(f"faiss_imi: the dimension D={x.shape[1]} must be even (two halves)")
        return super().fit(x)

    def set_search_params(self, max_codes: int | None = UNSET, nprobe: int | None = UNSET,
                          **params) -> None:
        """Change ``max_codes`` (None or 0: no limit) and/or ``nprobe`` (None: all cells,
        capped at 65,536) without retraining."""
        super().set_search_params(**params)
        if max_codes is not UNSET:
            self.max_codes = None if max_codes in (None, 0) else check_positive_int(
                max_codes, "max_codes")
        if nprobe is not UNSET:
            self.nprobe = None if nprobe is None else check_positive_int(nprobe, "nprobe", 1,
                                                                         self.ncells)

    def search(self, queries, k):
        """IMI search within the budget: (distances (nq, k) float32, ids (nq, k) int64)."""
        index = self.filled()
        check_k(k, index.ntotal)
        queries = as_matrix(queries, "query", dim=self.dim)
        ivf = self._ivf()
        ivf.nprobe = self.nprobe or min(self.ncells, MAX_DEFAULT_NPROBE)
        ivf.max_codes = self.max_codes or 0
        distances, ids, self.last_search = search_with_stats(index, queries, k)
        return distances, ids

    @property
    def codes_bytes(self) -> int:
        # fine codes plus the 64-bit id stored beside each code in the inverted lists
        return self.ntotal * int(self._ivf().code_size + 8) if self.index else 0

    @property
    def model_bytes(self) -> int:
        # fine codebooks plus the coarse product quantizer (2 x V x d/2 floats)
        return super().model_bytes + (self.V * self.dim * 4 if self.index else 0)

    def extra_metrics(self) -> dict:
        out = {"cells_probed_max": self.nprobe or min(self.ncells, MAX_DEFAULT_NPROBE),
               "fine_bits": self.code_bits,
               "cell_bits": 2 * self.coarse_bits,
               "total_bits": self.code_bits + 2 * self.coarse_bits}
        out.update(self.last_search)
        return out
