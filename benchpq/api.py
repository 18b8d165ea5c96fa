"""The plugin contract: what an algorithm offers the framework.

A plugin is a class registered under a name (see :mod:`benchpq.registry`) and
configured by ``conf/algorithm/<name>.yaml``; the YAML keys other than
``name`` are its constructor arguments. Capabilities are declared by the base
classes a plugin derives from, never guessed:

* :class:`Quantizer`: ``fit(x)``, ``encode(x) -> codes``, ``decode(codes) -> x``.
* :class:`Searcher`: ``fit(x)``, ``add(x)``, ``search(q, k) -> (distances, ids)``.
* :class:`Clusterer`: ``fit_predict(x, n_clusters) -> labels``.

A class may derive from several (a PQ index is a Quantizer and a Searcher).
Every plugin reports ``code_bits`` (bits per encoded vector) and
``model_bytes`` (codebooks, rotations, coarse quantizers).

Arrays: vectors are float32 of shape (n, d), C-contiguous; ids are int64;
distances are float32 squared L2, or inner products (largest first) for a searcher set to
``ip`` (:meth:`Searcher.set_metric`). The task checks shapes, dtypes and finiteness
before calling a plugin, so a plugin may rely on them.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .checks import InputError, check_positive_int

if TYPE_CHECKING:
    from .metric_table import Metric


class _Unset:
    """The default of a search parameter that was not given (None may be a real value)."""

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self):
        return "UNSET"


UNSET = _Unset()


class Algorithm:
    """Base of every plugin. ``name`` is set by the registry."""

    name: str = ""
    #: The metrics ``extra_metrics()`` returns, declared once: {name: Metric}, built with
    #: ``benchpq.metric_table.declare(Metric(...), ...)``. A subclass declares only what it
    #: adds (its bases' declarations are inherited). The task refuses an undeclared key.
    metric_specs: Mapping[str, Metric] = {}

    @property
    def code_bits(self) -> int:
        """Bits per encoded vector (0 for algorithms that store raw vectors)."""
        raise NotImplementedError

    @property
    def model_bytes(self) -> int:
        """Bytes of trained state: codebooks, rotations, coarse centroids."""
        raise NotImplementedError

    def fit(self, x: np.ndarray) -> Algorithm:
        """Train on ``x`` (n, d) float32; returns self."""
        raise NotImplementedError

    def set_threads(self, threads: int) -> None:
        """Called once before fit with the run's thread count.

        The runner already sets OMP/BLAS environment variables; override this
        when the library needs an explicit call.
        """

    def extra_metrics(self) -> dict:
        """Metrics the plugin measured itself (e.g. encode_s inside fit_predict, iterations).

        Each key is a core metric (benchpq.metric_table) or declared in ``metric_specs``.
        """
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Quantizer(Algorithm):
    """Maps vectors to compact codes and back."""

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, d) float32 -> (n, code_size) codes (uint8 unless documented)."""
        raise NotImplementedError

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_size) codes -> (n, d) float32 reconstructions."""
        raise NotImplementedError

    # How the codes estimate distances (benchpq.measure.codec). A quantizer with its own
    # estimator (RaBitQ's unbiased one) overrides these; the default is the asymmetric
    # distance to the decoded vectors, which ADC's lookup tables compute.
    def estimate_distances(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(nq, d) float32 queries, (n, code_size) codes -> (nq, n) float32 estimated
        squared L2 distances. Default: to the decoded vectors."""
        decoded = np.asarray(self.decode(codes), np.float64)
        q = np.asarray(queries, np.float64)
        d = (q * q).sum(1)[:, None] + (decoded * decoded).sum(1)[None, :] - 2 * q @ decoded.T
        return np.maximum(d, 0).astype(np.float32)

    def estimate_inner_products(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(nq, d) float32 queries, (n, code_size) codes -> (nq, n) float32 estimated inner
        products. Default: with the decoded vectors."""
        decoded = np.asarray(self.decode(codes), np.float64)
        return (np.asarray(queries, np.float64) @ decoded.T).astype(np.float32)

    # Optional, for codebook diagnostics (benchpq.measure.diagnostics): product-code quantizers
    # override subspace_codes, and subspace_view when their sub-spaces are not M equal
    # blocks of the input (a rotation, a coarse quantizer, a PCA).
    def subspace_codes(self, codes: np.ndarray) -> tuple[np.ndarray, int]:
        """(n, code_size) codes -> ((n, M) integer sub-codes, one column per sub-space, Ks).

        The default declares no sub-space structure (diagnostics skip the plugin).
        """
        raise NotImplementedError(f"{type(self).__name__} declares no product codes")

    def subspace_view(self, x: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (n, d) float32 in the frame where the sub-spaces are contiguous blocks.

        ``codes`` are the codes x is assigned (a frame may depend on them, e.g. a
        coarse cell's local rotation); x may be a reconstruction of those codes.
        Returns (view (n, d') float32, bounds (M + 1,) int64): sub-space m is
        columns bounds[m]:bounds[m + 1], quantized by column m of
        ``subspace_codes(codes)``. Default: x itself cut into M equal blocks.
        """
        return x, equal_bounds(x.shape[1], self.subspace_codes(codes[:1])[0].shape[1])


class Searcher(Algorithm):
    """Indexes a database and answers k-nearest-neighbour queries."""

    #: the metrics this searcher ranks by (:mod:`benchpq.datasets.metric`): ``l2``, and
    #: ``ip`` where it implements inner-product search (``cosine`` is ``ip`` on the
    #: normalised vectors a cosine dataset holds)
    search_metrics: tuple[str, ...] = ("l2",)
    #: the metric in force, set by :meth:`set_metric` before fit
    metric: str = "l2"

    def set_metric(self, metric: str) -> None:
        """Rank by ``metric`` (``l2`` or ``ip``) from the next :meth:`fit` on; the task calls
        it before training. A metric outside :attr:`search_metrics` is refused, naming both.
        Under ``ip``, :meth:`search` returns inner products, largest first."""
        if metric not in self.search_metrics:
            raise InputError(f"algorithm {self.name or type(self).__name__!r} searches by "
                             f"{', '.join(self.search_metrics)} only, not by {metric!r} (the "
                             f"dataset's metric); choose an algorithm that declares {metric!r} "
                             f"in search_metrics, or a dataset of its metric")
        self.metric = metric

    def add(self, x: np.ndarray) -> None:
        """Add database vectors (n, d) float32; ids are 0..n-1 in order of addition.

        A base is added in blocks (the search task's ``block_mb``), so an add costs what
        its block costs: a structure over all codes is built in :meth:`finish_add`."""
        raise NotImplementedError

    def finish_add(self) -> None:
        """Called once after the last :meth:`add` of a build, inside the timed add phase:
        where a plugin builds what spans all its codes (inverted lists, sorted postings).
        A plugin must also search correctly if it is never called. Default: nothing."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (distances (nq, k) float32, ids (nq, k) int64), nearest first: squared
        distances ascending, or under ``ip`` inner products descending.

        Missing results (fewer than k candidates) have id -1.
        """
        raise NotImplementedError

    @property
    def codes_bytes(self) -> int:
        """Bytes held for the added database (codes, ids, lists)."""
        raise NotImplementedError

    def set_search_params(self, **params) -> None:
        """Change query-time parameters (nprobe, quota...) without retraining.

        A plugin with search-time parameters overrides this with keyword
        parameters defaulting to :data:`UNSET` (so that None can be a value)
        and calls ``super().set_search_params(**rest)``; those keywords are the
        parameters a config's ``search`` grid may set (:mod:`benchpq.measure.search_grid`).
        The values are checked here, so a bad grid fails before training.
        """
        if params:
            raise TypeError(f"{type(self).__name__} has no search parameters {sorted(params)}")


class Clusterer(Algorithm):
    """Partitions vectors into clusters."""

    def fit_predict(self, x: np.ndarray, n_clusters: int) -> np.ndarray:
        """(n, d) float32 -> (n,) int64 cluster labels in [0, n_clusters)."""
        raise NotImplementedError

    @property
    def codes_bytes(self) -> int:
        """Bytes of the data representation the clusterer works on (raw or codes)."""
        raise NotImplementedError

    @property
    def code_bits(self) -> int:
        return 0

    @property
    def model_bytes(self) -> int:
        return 0


def equal_bounds(dim: int, M: int) -> np.ndarray:
    """(M + 1,) int64 boundaries of M equal contiguous blocks of ``dim`` columns."""
    dim, M = check_positive_int(dim, "dim"), check_positive_int(M, "M")
    if dim % M:
        raise InputError(f"{M} equal sub-spaces do not divide the dimension {dim}")
    return np.arange(M + 1, dtype=np.int64) * (dim // M)



def capabilities(obj) -> list[str]:
    """The declared capabilities of a plugin class or instance, e.g. ['quantizer', 'searcher']."""
    cls = obj if isinstance(obj, type) else type(obj)
    return [label for base, label in ((Quantizer, "quantizer"), (Searcher, "searcher"),
                                      (Clusterer, "clusterer")) if issubclass(cls, base)]
