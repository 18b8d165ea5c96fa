"""Datasets: readers, named datasets, ground truth.

Public API::

    load_dataset(cfg, data_dir=None, cache_dir=None) -> Dataset
    load_dataset("siftsmall", n_query=50)      # a shipped config by name, CLI keys on top
    named_datasets() / dataset_config(name, **keys)
    Dataset(name, learn, base, query, groundtruth=None, labels=None, info={})
    register_loader(name)                      # decorator for new loaders
    read_array(path, key=None, fmt=None)       # .fvecs .ivecs .bvecs .npy .hdf5 IDX .fbin .u8bin
    register_format(name, matches)             # decorator for new file formats
    read_vecs(path, mmap=True) / write_vecs(path, array)
    ground_truth(base, query, k=100, cache_dir=None) -> (ids, dist)
    ensure_groundtruth(ds, k=100, cache_dir=None) / exact_distances(base, query, ids)

Loaders: texmex, fashion_mnist, oxford5k, synthetic_uniform, synthetic_sift,
calibrated, files, ann_hdf5, bigann; named configs in ``conf/dataset/``. Every module of
this package is imported with it, so a new loader or file format is one module
that registers itself (no list to edit). Loaders read array files through
:func:`read_array`, which records each read for the dataset's fingerprint.
"""
from .context import LoadContext, resolve_cache_dir, resolve_data_dir
from .dataset import Dataset
from .download import ChecksumError, Expected, download_file, extract_archive, offline
from .formats import read_array, read_npy, register_format
from .groundtruth import ensure_groundtruth, exact_distances, ground_truth
from .hdf5 import read_ann_hdf5, read_hdf5, write_ann_hdf5
from .idx import read_idx
from .locate import DatasetNotFoundError, Source, locate_files
from .registry import (
    UnknownLoaderError,
    dataset_config,
    get_loader,
    known_loaders,
    load_dataset,
    named_datasets,
    register_loader,
)
from .splits import shuffle_split
from .vecs import read_vecs, write_vecs


def _import_modules() -> None:
    """Import every module of this package: loaders and formats register themselves."""
    import importlib
    import pkgutil
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_modules()

__all__ = [
    "ChecksumError", "Dataset", "DatasetNotFoundError", "Expected", "LoadContext", "Source",
    "UnknownLoaderError", "dataset_config", "download_file", "ensure_groundtruth",
    "exact_distances", "extract_archive", "get_loader", "ground_truth", "known_loaders",
    "load_dataset", "locate_files", "named_datasets", "offline", "read_ann_hdf5", "read_array",
    "read_hdf5", "read_idx", "read_npy", "read_vecs", "register_format", "register_loader",
    "resolve_cache_dir", "resolve_data_dir", "shuffle_split", "write_ann_hdf5", "write_vecs",
]
