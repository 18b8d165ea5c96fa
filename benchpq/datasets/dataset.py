"""The :class:`Dataset` every loader returns and every task consumes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..checks import InputError, check_finite, check_positive_int
from .metric import check_metric


def as_float32(x):
    """Return ``x`` as a C-contiguous float32 array when it is a numeric 2-D array.

    Contiguous float32 arrays (including read-only memmaps of .npy files) pass
    through without a copy; strided views (fvecs memmaps) and uint8 vectors
    (bvecs, IDX) are copied once. Anything else is returned unchanged for
    :meth:`Dataset.validate` to report.
    """
    if isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype.kind in "fiub":
        if x.dtype == np.float32 and x.flags.c_contiguous:
            return x
        with np.errstate(over="ignore"):  # float64 beyond float32: Inf, reported by validate
            return np.ascontiguousarray(x, dtype=np.float32)
    return x


#: types a base or learn set keeps as stored (SIFT1B's uint8 base is 128 GB; as float32 it
#: would be 512 GB): kernels read them block by block as floats
KEPT_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8))


def as_kept_or_float32(x):
    """``x`` unchanged when it is a 2-D array of a kept type (uint8, int8; memmaps stay
    memory-mapped), else :func:`as_float32`."""
    if isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype in KEPT_DTYPES:
        return x
    return as_float32(x)


@dataclass
class Dataset:
    """Vectors, queries and ground truth of one benchmark dataset.

    Attributes:
        name: dataset name (the ``name`` key of its config).
        learn: (n_learn, d) training vectors, float32 or kept uint8 / int8. May be
            the very same object as ``base`` (datasets without a learn set, e.g. siftsmall).
        base: (n_base, d) database vectors, float32 or kept uint8 / int8.
        query: (nq, d) float32 query vectors.
        groundtruth: (nq, k) int64 ids into ``base``, nearest first by ``metric``
            (ties by smaller id), k usually >= 100; None until computed
            (see :func:`benchpq.datasets.ensure_groundtruth`).
        labels: (n_base,) int64 class labels of the base vectors (for
            clustering metrics), or None.
        info: free-form description: ``source``, ``split``, ``groundtruth``...
        metric: what "nearest" means (:mod:`benchpq.datasets.metric`): ``l2``
            (default), ``ip`` (largest inner product) or ``cosine`` (the vectors are
            held normalised: :func:`benchpq.datasets.load_dataset` normalises them).

    Base and learn vectors of type uint8 or int8 are kept as they are (memory maps
    stay mapped; a task converts them block by block); every other type, and the
    queries, are converted to C-contiguous float32 on construction; contiguous float32
    memmaps stay memory-mapped.
    """

    name: str
    learn: np.ndarray
    base: np.ndarray
    query: np.ndarray
    groundtruth: np.ndarray | None = None
    labels: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    metric: str = "l2"

    def __post_init__(self):
        same = self.learn is self.base
        self.base = as_kept_or_float32(self.base)
        self.learn = self.base if same else as_kept_or_float32(self.learn)
        self.query = as_float32(self.query)
        if isinstance(self.groundtruth, np.ndarray) and self.groundtruth.dtype.kind in "iu":
            self.groundtruth = np.ascontiguousarray(self.groundtruth, dtype=np.int64)
        if isinstance(self.labels, np.ndarray) and self.labels.dtype.kind in "iu":
            self.labels = np.ascontiguousarray(self.labels.reshape(-1), dtype=np.int64)

    @property
    def dim(self) -> int:
        """The vector dimension d."""
        return int(self.base.shape[1])

    def __repr__(self) -> str:
        gt = None if self.groundtruth is None else self.groundtruth.shape
        return (f"Dataset({self.name!r}, learn={self.learn.shape}, base={self.base.shape}, "
                f"query={self.query.shape}, metric={self.metric!r}, groundtruth={gt}, "
                f"labels={'yes' if self.labels is not None else 'no'})")

    def validate(self) -> Dataset:
        """Check shapes, dtypes, finiteness, ground truth and labels; return self.

        Raises:
            InputError: naming the dataset and the problem, e.g.
                "dataset 'x': dimension mismatch: learn has 128, query has 64".
        """
        where = f"dataset {self.name!r}"
        check_metric(self.metric, f"{where}: metric")
        arrays = {"learn": self.learn, "base": self.base, "query": self.query}
        for part, x in arrays.items():
            if not isinstance(x, np.ndarray) or x.ndim != 2:
                shape = getattr(x, "shape", type(x).__name__)
                raise InputError(f"{where}: {part} must be a 2-D array (n, d), got {shape}")
            if x.dtype.kind not in "fiub":
                raise InputError(f"{where}: {part} has dtype {x.dtype}, which cannot be "
                                 f"converted to float32")
            if x.shape[0] == 0 or x.shape[1] == 0:
                raise InputError(f"{where}: {part} is empty (shape {x.shape})")
        dims = {part: x.shape[1] for part, x in arrays.items()}
        for part in ("base", "query"):
            if dims[part] != dims["learn"]:
                raise InputError(f"{where}: dimension mismatch: learn has {dims['learn']}, "
                                 f"{part} has {dims[part]}")
        for part, x in arrays.items():
            if part == "learn" and x is self.base:
                continue
            if x.dtype.kind == "f":
                check_finite(x, f"{where} {part}")
        self._validate_groundtruth(where)
        self._validate_labels(where)
        return self

    def _validate_groundtruth(self, where: str) -> None:
        gt = self.groundtruth
        if gt is None:
            return
        nq, n_base = self.query.shape[0], self.base.shape[0]
        if not isinstance(gt, np.ndarray) or gt.ndim != 2 or gt.dtype.kind not in "iu":
            raise InputError(f"{where}: groundtruth must be a 2-D integer array (nq, k), got "
                             f"{getattr(gt, 'shape', type(gt).__name__)} "
                             f"{getattr(gt, 'dtype', '')}")
        if gt.shape[0] != nq:
            raise InputError(f"{where}: groundtruth has {gt.shape[0]} rows but there are "
                             f"{nq} queries")
        if gt.shape[1] == 0:
            raise InputError(f"{where}: groundtruth has no columns")
        lo, hi = int(gt.min()), int(gt.max())
        if lo < 0 or hi >= n_base:
            raise InputError(f"{where}: groundtruth ids must be in [0, {n_base}) (the base "
                             f"size), found [{lo}, {hi}]")

    def _validate_labels(self, where: str) -> None:
        labels = self.labels
        if labels is None:
            return
        if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise InputError(f"{where}: labels must be a 1-D integer array (n_base,), got "
                             f"{getattr(labels, 'shape', type(labels).__name__)}")
        if labels.shape[0] != self.base.shape[0]:
            raise InputError(f"{where}: {labels.shape[0]} labels for {self.base.shape[0]} "
                             f"base vectors")

    def subset(self, n_learn: int | None = None, n_base: int | None = None,
               n_query: int | None = None) -> Dataset:
        """Return a dataset with the first ``n_learn`` / ``n_base`` / ``n_query`` rows.

        None keeps a part whole. Labels follow the base; ground-truth rows
        follow the queries. A smaller base invalidates the ground truth, which
        is dropped (:func:`ensure_groundtruth` recomputes it). When learn is
        base and ``n_learn`` is not given, learn stays the (subset) base.
        """
        sizes = {"n_learn": n_learn, "n_base": n_base, "n_query": n_query}
        have = {"n_learn": self.learn.shape[0], "n_base": self.base.shape[0],
                "n_query": self.query.shape[0]}
        for key, value in sizes.items():
            if value is not None:
                check_positive_int(value, f"dataset {self.name!r} {key}", 1, have[key])
        base = self.base if n_base is None else self.base[:n_base]
        if n_learn is not None:
            learn = self.learn[:n_learn]
        else:
            learn = base if self.learn is self.base else self.learn
        query = self.query if n_query is None else self.query[:n_query]
        gt, info = self.groundtruth, dict(self.info)
        if gt is not None and base.shape[0] < self.base.shape[0]:
            gt = None
            info["groundtruth"] = "dropped by n_base subsetting (recomputed on demand)"
        elif gt is not None:
            gt = gt[:query.shape[0]]
        labels = None if self.labels is None else self.labels[:base.shape[0]]
        changed = {k: int(v) for k, v in sizes.items() if v is not None}
        if changed:
            info["subset"] = changed
        return dataclasses.replace(self, learn=learn, base=base, query=query,
                                   groundtruth=gt, labels=labels, info=info)
