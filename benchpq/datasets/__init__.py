"""Datasets: readers, named datasets, ground truth.

Public API::

    load_dataset(cfg, data_dir=None, cache_dir=None) -> Dataset
    Dataset(name, learn, base, query, groundtruth=None, labels=None, info={})
    register_loader(name)                      # decorator for new loaders
    read_vecs(path, mmap=True) / write_vecs(path, array)
    read_array(path, key=None)                 # .fvecs .ivecs .bvecs .npy .hdf5 IDX
    ground_truth(base, query, k=100, cache_dir=None) -> (ids, dist)
    ensure_groundtruth(ds, k=100, cache_dir=None) / exact_distances(base, query, ids)

Loaders: texmex, fashion_mnist, oxford5k, synthetic_uniform, synthetic_sift,
calibrated, files, ann_hdf5; named configs in ``conf/dataset/``.
"""
from .context import LoadContext, resolve_cache_dir, resolve_data_dir
from .dataset import Dataset
from .download import ChecksumError, Expected, download_file, extract_archive, offline
from .formats import read_array, read_npy
from .groundtruth import ensure_groundtruth, exact_distances, ground_truth
from .hdf5 import read_ann_hdf5, read_hdf5, write_ann_hdf5
from .idx import read_idx
from .locate import DatasetNotFoundError, Source, locate_files
from .registry import UnknownLoaderError, get_loader, known_loaders, load_dataset, register_loader
from .splits import shuffle_split
from .vecs import read_vecs, write_vecs

# loader modules: importing them registers their loaders
from . import calibrated, fashion_mnist, files, oxford5k, synthetic, texmex  # noqa: E402,F401  isort:skip

__all__ = [
    "ChecksumError", "Dataset", "DatasetNotFoundError", "Expected", "LoadContext", "Source",
    "UnknownLoaderError", "download_file", "ensure_groundtruth", "exact_distances",
    "extract_archive", "get_loader", "ground_truth", "known_loaders", "load_dataset",
    "locate_files", "offline", "read_ann_hdf5", "read_array", "read_hdf5", "read_idx",
    "read_npy", "read_vecs", "register_loader", "resolve_cache_dir", "resolve_data_dir",
    "shuffle_split", "write_ann_hdf5", "write_vecs",
]
