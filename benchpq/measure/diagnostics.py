"""Codebook diagnostics: where a quantizer distorts, how it uses its codewords,
how balanced a clustering is. Pure functions of arrays, plus one helper that
feeds a quantizer's encoded data through them chunk by chunk.

Quantizers (any plugin whose codes are product codes, see
:meth:`benchpq.api.Quantizer.subspace_codes`):

* ``subspace_mse`` (list of M floats): mean over vectors of the squared error
  in sub-space m, measured in the frame where the sub-spaces are contiguous
  blocks (:meth:`benchpq.api.Quantizer.subspace_view`: the rotated space of
  OPQ, a cell's local frame for LOPQ, the residual to the coarse centroid for
  IVFPQ). When that frame is an orthogonal map of the whole input space the
  M values sum to the run's ``mse`` (the mean of ||x - x_hat||², not divided
  by D); with a PCA that drops directions they sum to less.
  Summaries: ``subspace_mse_min``, ``subspace_mse_max``, ``subspace_mse_sum``
  and ``subspace_mse_imbalance`` (max over mean; 1 when balanced).
* ``codeword_usage`` (list of M floats): fraction of the Ks codewords of
  sub-space m that encode at least one vector; ``codeword_usage_min``,
  ``codeword_usage_mean``.
* ``code_entropy_bits`` (list of M floats): Shannon entropy, in bits, of the
  codeword assignments of sub-space m, between 0 (one codeword used) and
  log2(Ks) (all used equally often); ``code_entropy_mean_bits``,
  ``code_entropy_min_bits`` and ``code_entropy_efficiency`` (mean over
  log2 Ks), the fraction of the code's bits that carry information
  (Jégou, Douze, Schmid, TPAMI 2011, discuss the entropy of PQ codes, sec. IV).

Clusterers: ``cluster_size_min``, ``cluster_size_median``, ``cluster_size_max``
(members per cluster, empty clusters included as 0), ``empty_clusters``,
``cluster_size_cv`` (std over mean of the sizes) and ``cluster_balance``
(entropy of the sizes over log2 n_clusters; 1 when all clusters are equal).

Every value is a Python float or int (lists of floats), so the dicts go into
run records as they are.
"""
from __future__ import annotations

import numpy as np

from ..api import Quantizer, equal_bounds  # noqa: F401 - part of this module's API
from ..checks import InputError, check_labels, check_positive_int

CHUNK_ROWS = 65536


def check_bounds(bounds, dim: int) -> np.ndarray:
    """Sub-space boundaries as (M + 1,) int64, increasing from 0 to at most ``dim``, or raise."""
    b = np.asarray(bounds)
    if b.ndim != 1 or b.size < 2 or b.dtype.kind not in "iu":
        raise InputError(f"sub-space bounds: expected a 1-D integer array of M + 1 >= 2 "
                         f"boundaries, got {b.dtype} of shape {b.shape}")
    b = b.astype(np.int64)
    if b[0] != 0 or b[-1] > dim or np.any(np.diff(b) <= 0):
        raise InputError(f"sub-space bounds must increase from 0 to at most the dimension "
                         f"{dim}, got {b.tolist()}")
    return b


def subspace_squared_error(view: np.ndarray, view_hat: np.ndarray, bounds) -> np.ndarray:
    """(M,) float64 sums over rows of the squared error of each block of columns.

    Args:
        view, view_hat: (n, D') vectors and reconstructions in the sub-space frame.
        bounds: (M + 1,) block boundaries (sub-space m is columns bounds[m]:bounds[m+1]).
    """
    view, view_hat = np.asarray(view), np.asarray(view_hat)
    if view.ndim != 2 or view.shape != view_hat.shape:
        raise InputError(f"sub-space views: expected two (n, D) arrays of one shape, got "
                         f"{view.shape} and {view_hat.shape}")
    b = check_bounds(bounds, view.shape[1])
    diff = view.astype(np.float64) - view_hat
    per_column = np.einsum("ij,ij->j", diff, diff)
    return np.array([per_column[lo:hi].sum() for lo, hi in zip(b[:-1], b[1:])])


def subspace_mse_metrics(per_subspace_mse) -> dict:
    """Record entries from the (M,) per-sub-space mse (mean over vectors of each block's error)."""
    v = np.asarray(per_subspace_mse, dtype=np.float64)
    mean = v.mean()
    return {"subspace_mse": [float(e) for e in v],
            "subspace_mse_min": float(v.min()), "subspace_mse_max": float(v.max()),
            "subspace_mse_sum": float(v.sum()),
            "subspace_mse_imbalance": float(v.max() / mean) if mean > 0 else 1.0}


def subspace_mse(view: np.ndarray, view_hat: np.ndarray, bounds) -> dict:
    """Per-sub-space mse of (n, D') vectors against their reconstructions, as record entries."""
    n = np.asarray(view).shape[0]
    if n == 0:
        raise InputError("sub-space mse of zero vectors")
    return subspace_mse_metrics(subspace_squared_error(view, view_hat, bounds) / n)


def code_counts(sub_codes: np.ndarray, Ks: int) -> np.ndarray:
    """(M, Ks) int64: how many vectors each codeword of each sub-space encodes.

    Args:
        sub_codes: (n, M) integer codes, one column per sub-space, values in [0, Ks).
    """
    Ks = check_positive_int(Ks, "Ks")
    codes = np.asarray(sub_codes)
    if codes.ndim != 2 or codes.dtype.kind not in "iu":
        raise InputError(f"sub-codes: expected an (n, M) integer array, got {codes.dtype} of "
                         f"shape {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= Ks):
        raise InputError(f"sub-codes: values must be in [0, {Ks}), got "
                         f"[{codes.min()}, {codes.max()}]")
    return np.stack([np.bincount(codes[:, m], minlength=Ks) for m in range(codes.shape[1])]) \
        .astype(np.int64) if codes.shape[1] else np.zeros((0, Ks), np.int64)


def entropy_bits(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each row of a (M, K) count array (0 for an all-zero row)."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=-1, keepdims=True)
    p = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    logs = np.log2(p, out=np.zeros_like(p), where=p > 0)
    return np.maximum(-(p * logs).sum(axis=-1), 0.0)


def codeword_usage(counts: np.ndarray) -> dict:
    """Record entries on codeword usage from (M, Ks) counts (see :func:`code_counts`)."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] == 0 or counts.shape[1] < 2:
        raise InputError(f"codeword counts: expected an (M, Ks) array with M >= 1 and Ks >= 2, "
                         f"got shape {counts.shape}")
    used = (counts > 0).mean(axis=1)
    bits = entropy_bits(counts)
    return {"codeword_usage": [float(u) for u in used],
            "codeword_usage_min": float(used.min()), "codeword_usage_mean": float(used.mean()),
            "code_entropy_bits": [float(h) for h in bits],
            "code_entropy_mean_bits": float(bits.mean()),
            "code_entropy_min_bits": float(bits.min()),
            "code_entropy_efficiency": float(bits.mean() / np.log2(counts.shape[1]))}


def cluster_sizes(labels: np.ndarray, n_clusters: int) -> dict:
    """Record entries on the cluster size distribution of (n,) labels in [0, n_clusters)."""
    n_clusters = check_positive_int(n_clusters, "n_clusters")
    labels = check_labels(labels, np.asarray(labels).shape[0], n_clusters)
    if labels.size == 0:
        raise InputError("cluster sizes of zero labels")
    sizes = np.bincount(labels, minlength=n_clusters)
    mean = sizes.mean()
    balance = float(entropy_bits(sizes[None])[0] / np.log2(n_clusters)) if n_clusters > 1 \
        else 1.0
    return {"cluster_size_min": int(sizes.min()), "cluster_size_median": float(np.median(sizes)),
            "cluster_size_max": int(sizes.max()), "empty_clusters": int((sizes == 0).sum()),
            "cluster_size_cv": float(sizes.std() / mean), "cluster_balance": balance}


def has_subspaces(plugin) -> bool:
    """Whether ``plugin`` declares product codes (overrides ``subspace_codes``)."""
    return isinstance(plugin, Quantizer) and \
        type(plugin).subspace_codes is not Quantizer.subspace_codes


class QuantizerDiagnostics:
    """Sub-space mse and codeword usage of a fitted quantizer, accumulated block by block.

    Feed it the encoded data in blocks (:meth:`update`), so neither the vectors nor the
    codes need to be held whole; :meth:`result` gives the record entries. Each block is
    decoded and mapped to the sub-space frame ``chunk_rows`` rows at a time.

    Args:
        plugin: a fitted :class:`benchpq.api.Quantizer` declaring product codes
            (:func:`has_subspaces`).
    """

    def __init__(self, plugin, chunk_rows: int = CHUNK_ROWS):
        if not has_subspaces(plugin):
            raise InputError(f"diagnostics: {plugin.name!r} declares no product codes")
        self.plugin = plugin
        self.chunk_rows = check_positive_int(chunk_rows, "chunk_rows")
        self.n, self.errors, self.counts = 0, None, None

    def update(self, x: np.ndarray, codes: np.ndarray) -> None:
        """Add (n, D) vectors ``x`` and their (n, code_size) ``codes`` (as ``encode`` gave)."""
        plugin = self.plugin
        if codes.shape[0] != x.shape[0]:
            raise InputError(f"diagnostics: {codes.shape[0]} codes for {x.shape[0]} vectors")
        for start in range(0, x.shape[0], self.chunk_rows):
            block = np.ascontiguousarray(x[start:start + self.chunk_rows], dtype=np.float32)
            block_codes = codes[start:start + self.chunk_rows]
            sub_codes, Ks = plugin.subspace_codes(block_codes)
            view, bounds = plugin.subspace_view(block, block_codes)
            view_hat, bounds_hat = plugin.subspace_view(
                np.ascontiguousarray(plugin.decode(block_codes), dtype=np.float32), block_codes)
            if not np.array_equal(bounds, bounds_hat):
                raise InputError(f"{plugin.name}: sub-space bounds differ between x and x_hat")
            if len(bounds) - 1 != sub_codes.shape[1]:
                raise InputError(f"{plugin.name}: {len(bounds) - 1} sub-spaces in the view but "
                                 f"{sub_codes.shape[1]} sub-code columns")
            e, c = subspace_squared_error(view, view_hat, bounds), code_counts(sub_codes, Ks)
            self.errors, self.counts = (e, c) if self.errors is None else \
                (self.errors + e, self.counts + c)
        self.n += x.shape[0]

    def result(self) -> dict:
        """The record entries over every vector added so far."""
        if self.n == 0:
            raise InputError("diagnostics of zero vectors")
        return {**subspace_mse_metrics(self.errors / self.n), **codeword_usage(self.counts)}


def quantizer_diagnostics(plugin, x: np.ndarray, codes: np.ndarray,
                          chunk_rows: int = CHUNK_ROWS) -> dict:
    """Sub-space mse and codeword usage of a fitted quantizer on ``x`` and its ``codes``
    (:class:`QuantizerDiagnostics` over one block); {} when the plugin declares no product
    codes (:func:`has_subspaces`).

    Args:
        plugin: a fitted :class:`benchpq.api.Quantizer`.
        x: (n, D) vectors (may be memory-mapped).
        codes: (n, code_size) codes of ``x`` as ``plugin.encode(x)`` returned them.
    """
    if not has_subspaces(plugin):
        return {}
    acc = QuantizerDiagnostics(plugin, chunk_rows)
    acc.update(x, codes)
    return acc.result()
