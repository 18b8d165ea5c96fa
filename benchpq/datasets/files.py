"""Loaders for your own files: ``files`` (one file per part) and ``ann_hdf5``.

``files`` keys: ``base`` (required), ``query``, ``learn``, ``groundtruth``,
``labels`` -- paths of any format :func:`benchpq.datasets.formats.read_array`
reads (.fvecs .ivecs .bvecs .npy .hdf5/.h5 IDX .fbin .u8bin .i8bin .ibin), relative to the data
directory; HDF5 datasets as ``file.hdf5:key`` or with ``<part>_key``. Without
``learn``, learn = base. Without ``query``, ``test_size`` splits the base like
scikit-learn's ``train_test_split`` (learn = base = train, query = test).

``ann_hdf5`` keys: ``path`` of an ann-benchmarks file (learn = base = train,
query = test, groundtruth = neighbors); ``url`` to download it when missing
(no checksum is published: the file is only checked by reading its layout). The file's
``distance`` gives the dataset's metric (:data:`ANN_DISTANCES`): ``euclidean`` is ``l2``,
``angular`` is ``cosine`` (the vectors are then normalised), ``dot`` is ``ip``; its
``neighbors`` were computed with it, so a config's ``metric`` must agree.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checks import InputError
from .context import LoadContext
from .dataset import Dataset
from .download import Expected
from .formats import read_array, split_key
from .hdf5 import read_ann_hdf5
from .locate import DatasetNotFoundError, Source, locate_files
from .registry import register_loader
from .splits import shuffle_split

#: ann-benchmarks' ``distance`` attribute -> benchpq's metric
ANN_DISTANCES = {"euclidean": "l2", "l2": "l2", "angular": "cosine", "cosine": "cosine",
                 "dot": "ip", "ip": "ip"}


def _read_part(ctx: LoadContext, part: str, spec, key: str | None) -> np.ndarray:
    path, path_key = split_key(spec)
    path = ctx.resolve(path)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"dataset {ctx.name!r}: {part} file {path} not found (relative paths are taken "
            f"from the data directory {ctx.data_dir}; set BENCHPQ_DATA or data_dir)")
    return read_array(path, key=key or path_key)


def _ids(x: np.ndarray, what: str, path) -> np.ndarray:
    if x.dtype.kind not in "iu":
        raise InputError(f"{path}: {what} must hold integers, got dtype {x.dtype}")
    return np.asarray(x, dtype=np.int64)


@register_loader("files")
def load_files(ctx: LoadContext, base: str, query: str | None = None, learn: str | None = None,
               groundtruth: str | None = None, labels: str | None = None,
               base_key: str | None = None, query_key: str | None = None,
               learn_key: str | None = None, groundtruth_key: str | None = None,
               labels_key: str | None = None, test_size: float | None = None,
               seed: int = 40) -> Dataset:
    """Build a dataset from one file per part (see the module doc)."""
    x_base = _read_part(ctx, "base", base, base_key)
    y = None if labels is None else _ids(_read_part(ctx, "labels", labels, labels_key),
                                         "labels", labels).reshape(-1)
    gt = None if groundtruth is None else _ids(
        _read_part(ctx, "groundtruth", groundtruth, groundtruth_key), "groundtruth", groundtruth)
    if query is not None:
        x_query = _read_part(ctx, "query", query, query_key)
        split = "query from its own file"
    elif test_size is not None:
        if learn is not None or gt is not None:
            raise InputError(f"dataset {ctx.name!r}: test_size splits base into base and "
                             f"query; it cannot be combined with learn or groundtruth files")
        train, test = shuffle_split(x_base.shape[0], test_size, seed)
        x_query, x_base = np.asarray(x_base)[test], np.asarray(x_base)[train]
        y = None if y is None else y[train]
        split = f"base split by train_test_split(test_size={test_size}, random_state={seed})"
    else:
        raise InputError(f"dataset {ctx.name!r}: give a query file (query: ...) or test_size "
                         f"to split queries off the base")
    x_learn = x_base if learn is None else _read_part(ctx, "learn", learn, learn_key)
    return Dataset(name=ctx.name, learn=x_learn, base=x_base, query=x_query, groundtruth=gt,
                   labels=y,
                   info={"source": f"files (base: {base})",
                         "split": f"{split}; learn = " + ("base" if learn is None else learn),
                         "groundtruth": "shipped" if gt is not None else "computed on demand"})


@register_loader("ann_hdf5")
def load_ann_hdf5(ctx: LoadContext, path: str, url: str | None = None) -> Dataset:
    """Load an ann-benchmarks .hdf5 file (see the module doc); the dataset's metric is the
    file's (``info["file_metric"]``)."""
    rel = Path(str(path)).expanduser()
    source = Source(url, files={rel.name: Expected()}, archive=False) if url else None
    file = locate_files(ctx, rel.parent, [rel.name], source)[rel.name]
    data = read_ann_hdf5(file)
    train, test, gt = data["train"], data["test"], data["neighbors"]
    distance = data["distance"]
    if distance not in ANN_DISTANCES:
        raise InputError(f"{file}: ann-benchmarks distance {distance!r} is not supported "
                         f"(one of {', '.join(ANN_DISTANCES)})")
    metric = ANN_DISTANCES[distance]
    return Dataset(name=ctx.name, learn=train, base=train, query=test, groundtruth=gt,
                   metric=metric,
                   info={"source": f"ann-benchmarks {file.name} ({distance})",
                         "split": "learn = base = train, query = test", "file_metric": metric,
                         "groundtruth": "neighbors" if gt is not None else "computed on demand"})
