"""faiss scalar quantizers, flat and inverted-file: plugins ``faiss_sq`` and ``faiss_ivfsq``.

Each component of a vector gets its own code (Douze et al., "The Faiss library", 2024,
scalar quantization): ``qtype`` names one of faiss's
``ScalarQuantizer.QT_*`` encodings without its prefix, read from the installed faiss
(:data:`QTYPES`; faiss 1.15.1 has 27, ``QT_count`` is a count, not an encoding):

* ``8bit``, ``6bit``, ``4bit``: a uniform grid over each dimension's trained range
  [vmin, vmin + vdiff]; ``8bit_uniform``, ``4bit_uniform``: one range for all dimensions.
* ``fp16``, ``bf16``: the component as a 16-bit float (nothing trained).
* ``8bit_direct``: a component in [0, 256) stored as the byte int(x) (SIFT's integer
  values exactly); ``8bit_direct_signed``: a component in [-128, 128) as int(x) + 128.
  Other values would wrap around, so they are refused.
* ``{1,2,3,4,8}bit_tqmse``: TurboQuant's MSE stage (Zandieh et al., "TurboQuant: Online
  Vector Quantization with Near-optimal Distortion Rate", 2025): a fixed Lloyd-Max code
  for the coordinates of a randomly rotated unit vector, N(0, 1/d), not trained on the data.
  ``{2,3,4,5}bit_tq``:
  full TurboQuant, (b - 1)-bit MSE code plus a 1-bit QJL code and per-vector factors.
  ``{1..8}bit_eden``: EDEN's Lloyd-Max code (Vargaftik et al., "EDEN: Communication-
  Efficient and Robust Distributed Mean Estimation", ICML 2022) for N(0, 1) coordinates,
  also fixed.
  faiss applies these codes to the vectors as given (no rotation, no normalisation):
  on raw SIFT they reconstruct far worse than ``8bit`` (tests/test_faiss_scalar.py).
* ``0bit`` (``faiss_ivfsq`` only): no code; a vector is its list's centroid.

Vectors are float32 (n, d); codes are faiss's standalone codes (``sa_encode``), uint8
(n, sa_code_size): for ``faiss_ivfsq`` the list number on ``coarse_code_size`` bytes, then
the code of the vector (``by_residual``: of its residual to the list's centroid).
Distances are squared L2 between the query and the decoded vector; under ``ip`` (both
plugins) faiss's inner products with it, largest first.
"""
from __future__ import annotations

import faiss

from benchpq.checks import InputError, as_matrix
from benchpq.registry import register

from ..primitives.checks import check_flag
from .faiss_quantizers import FaissIndexPlugin, InvertedFileSearch

#: {qtype name: faiss ScalarQuantizer.QT_* value} of every encoding the installed faiss has
QTYPES = {name[len("QT_"):]: getattr(faiss.ScalarQuantizer, name)
          for name in dir(faiss.ScalarQuantizer)
          if name.startswith("QT_") and name != "QT_count"}

#: qtypes whose code is int(x) of the component: the values each can hold, [low, high)
DIRECT_RANGES = {"8bit_direct": (0, 256), "8bit_direct_signed": (-128, 128)}

#: the encoding that stores nothing: a flat index could not tell two vectors apart
NO_CODE = "0bit"


def check_qtype(qtype, flat: bool) -> str:
    """``qtype`` if faiss has it (and, for a flat index, it stores a code), else InputError
    listing the valid names."""
    valid = sorted(q for q in QTYPES if not (flat and q == NO_CODE))
    if qtype not in valid:
        why = (" (0bit stores no code: only an inverted file, whose lists hold the vectors, "
               "can use it)" if qtype == NO_CODE else "")
        raise InputError(f"qtype: expected one of {valid}, got {qtype!r}{why}")
    return qtype


class FaissScalarIndex(FaissIndexPlugin):
    """A faiss index whose codes are a faiss ScalarQuantizer's (``sq``), one per component.

    ``code_bits`` is faiss's code size in bits (0 before fit: it depends on the dimension);
    ``model_bytes`` the trained values of the quantizer (ranges, or a codebook), float32.
    """

    #: whether each vector's cell is kept beside its code (an inverted file's lists), so
    #: that ``0bit``, no code, still tells vectors of different cells apart
    stores_lists = False

    def __init__(self, qtype: str = "8bit", seed: int | None = None):
        super().__init__(seed)
        self.qtype = check_qtype(qtype, flat=not self.stores_lists)

    def _checked(self, x, name: str):
        """x; for a direct qtype, x (n, d) float32 checked to lie in the range its bytes
        hold (other input is checked by the base class)."""
        if self.qtype not in DIRECT_RANGES:
            return x
        x = as_matrix(x, name, dim=self.dim)
        low, high = DIRECT_RANGES[self.qtype]
        if x.min() < low or x.max() >= high:
            raise InputError(f"{name}: qtype {self.qtype} stores int(x) of each component, "
                             f"so values must lie in [{low}, {high}); got "
                             f"[{float(x.min())}, {float(x.max())}]")
        return x

    def fit(self, x):
        return super().fit(self._checked(x, "learn"))

    def encode(self, x):
        self.trained()
        return super().encode(self._checked(x, "x"))

    def add(self, x):
        self.trained()
        super().add(self._checked(x, "base"))

    def _sq(self):
        return faiss.downcast_index(self.trained()).sq

    @property
    def code_bits(self) -> int:
        return int(faiss.downcast_index(self.index).code_size) * 8 if self.index else 0

    @property
    def model_bytes(self) -> int:
        return int(self._sq().trained.size()) * 4 if self.index else 0


@register("faiss_sq")
class FaissSQ(FaissScalarIndex):
    """faiss IndexScalarQuantizer: every component coded by ``qtype``, exhaustive search
    (METRIC_INNER_PRODUCT under ``ip``)."""

    search_metrics = ("l2", "ip")

    def _build(self, dim):
        return faiss.IndexScalarQuantizer(dim, QTYPES[self.qtype], self._faiss_metric())


@register("faiss_ivfsq")
class FaissIVFSQ(InvertedFileSearch, FaissScalarIndex):
    """faiss IndexIVFScalarQuantizer: nlist k-means cells, the vector (``by_residual``: its
    residual to the cell's centroid) coded by ``qtype``; nprobe cells visited per query, at
    most ``max_codes`` codes scanned (the last list cut; None: no limit). Under ``ip`` the
    cells are an IndexFlatIP and the scan ranks by inner product (METRIC_INNER_PRODUCT).

    ``code_bits`` counts the code in the lists (as ``faiss_ivfpq``'s, not the list number);
    ``codes_bytes`` the codes and the 64-bit id beside each; ``model_bytes`` also the
    nlist x d float32 centroids.
    """

    stores_lists = True
    search_metrics = ("l2", "ip")

    def __init__(self, qtype: str = "8bit", nlist: int = 1024, nprobe: int = 16,
                 max_codes: int | None = None, by_residual: bool = True,
                 seed: int | None = None):
        super().__init__(qtype, seed)
        self._set_inverted_file(nlist, nprobe, max_codes)
        self.by_residual = check_flag(by_residual, "by_residual")

    def _build(self, dim):
        coarse = self._flat_cells(dim)
        index = faiss.IndexIVFScalarQuantizer(coarse, dim, self.nlist, QTYPES[self.qtype],
                                              self._faiss_metric(), self.by_residual)
        self._coarse = coarse  # keep the Python wrapper alive with the index
        index.nprobe, index.max_codes = self.nprobe, self.max_codes or 0
        if self.seed is not None:
            index.cp.seed = int(self.seed)
        return index

    def _min_train(self) -> int:
        return self.nlist

