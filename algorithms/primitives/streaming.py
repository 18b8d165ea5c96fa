"""Training samples and block-wise passes over (possibly memory-mapped) inputs.

A memory-mapped input keeps only the block being read resident: each block's
pages are released once it has been used.
"""
from __future__ import annotations

import numpy as np

from benchpq.checks import InputError
from benchpq.store.mapped import release_pages

STREAM_ROWS = 65536  # rows checked / encoded at a time


def training_sample(x: np.ndarray, train_size: int | None, seed: int) -> np.ndarray:
    """x itself, or ``train_size`` rows drawn without replacement (seeded), in row order.

    Rows are gathered block by block, each block's pages released if x is
    memory-mapped (a random sample touches nearly every page).
    """
    n = x.shape[0]
    if train_size is None or n <= train_size:
        return x
    rows = np.sort(np.random.default_rng(seed).choice(n, size=train_size, replace=False))
    out = np.empty((train_size, x.shape[1]), x.dtype)
    for start in range(0, n, STREAM_ROWS):
        lo, hi = np.searchsorted(rows, [start, start + STREAM_ROWS])
        if hi > lo:
            out[lo:hi] = x[rows[lo:hi]]
        release_pages(x[start:start + STREAM_ROWS])
    return out


def check_finite_streaming(x: np.ndarray, name: str = "x") -> None:
    """Raise InputError if x holds NaN or Inf (naming the first row), block by block,
    releasing each block's pages if x is memory-mapped. Integer data pass unread."""
    if x.dtype.kind != "f":
        return
    for start in range(0, x.shape[0], STREAM_ROWS):
        block = x[start:start + STREAM_ROWS]
        bad = ~np.isfinite(block)
        if bad.any():
            row = start + int(np.flatnonzero(bad.any(axis=1))[0])
            kind = "NaN" if np.isnan(block).any() else "Inf"
            raise InputError(f"{name}: contains {kind} (first in row {row})")
        release_pages(block)


def encode_streaming(encode, x: np.ndarray, width: int) -> np.ndarray:
    """(n, width) uint8 codes of x, encoded STREAM_ROWS rows at a time by ``encode``;
    a memory-mapped x keeps only the block being encoded resident."""
    codes = np.empty((x.shape[0], width), np.uint8)
    for start in range(0, x.shape[0], STREAM_ROWS):
        block = x[start:start + STREAM_ROWS]
        codes[start:start + len(block)] = encode(block)
        release_pages(block)
    return codes
