"""Reproducible train/test splits of one set of vectors."""
from __future__ import annotations

import math

import numpy as np

from ..checks import InputError


def shuffle_split(n: int, test_size: float = 0.2, seed: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) exactly as scikit-learn's ``train_test_split``.

    ``train_test_split(data, test_size=test_size, random_state=seed)`` draws
    ``perm = np.random.RandomState(seed).permutation(n)`` and returns
    ``data[perm[n_test:]], data[perm[:n_test]]`` with
    ``n_test = ceil(test_size * n)`` (an int ``test_size`` is a count). The LOPQ
    reference test splits Oxford5k this way with seed 40: 4050 / 1013.

    Returns:
        train (n - n_test,) int64 and test (n_test,) int64 row indices.
    """
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        n_test = int(test_size)
    elif isinstance(test_size, float) and 0.0 < test_size < 1.0:
        n_test = math.ceil(test_size * n)
    else:
        raise InputError(f"test_size: expected a fraction in (0, 1) or a count, got {test_size!r}")
    if not 0 < n_test < n:
        raise InputError(f"test_size={test_size!r} leaves {n - n_test} of {n} rows for training")
    perm = np.random.RandomState(seed).permutation(n)
    return perm[n_test:].astype(np.int64), perm[:n_test].astype(np.int64)
