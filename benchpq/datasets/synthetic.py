"""Synthetic datasets: ``synthetic_uniform``, ``synthetic_sift`` (SIFT-like) and
``synthetic_mips`` (embedding-like, for inner-product search).

* uniform: i.i.d. U[0, 1)^dim float32, as in the nanopq / pqkmeans examples.
* SIFT-like: a Gaussian mixture shaped like SIFT descriptors -- values are
  integers in 0..255, non-negative with many zeros (clipped), per-dimension
  means drawn from a skewed Gamma(0.6, 35) (mean ~21), variance growing with
  the mean, anisotropic cluster covariances (rank-8 factor plus diagonal, so
  components are elongated ellipsoids) and heavy tails (each vector's
  deviation is scaled as a Student-t with 4 degrees of freedom).
* MIPS: embedding-like vectors whose norms vary, so that the largest inner product,
  the smallest distance and the largest cosine pick different neighbours: directions
  from a mixture of ``n_components`` Gaussian clusters (centres N(0, I), spread 0.7 per
  dimension) normalised to unit length, times a log-normal norm exp(norm_sigma z),
  z ~ N(0, 1). Searched by ``ip`` by default (the dataset's ``metric``).

Generation is deterministic and chunked: chunk ``i`` of split ``s`` is drawn
from ``np.random.default_rng([seed, s, i])`` with a fixed chunk size, so the
output depends only on the parameters, memory stays at one chunk besides the
output, and 1M x 128 takes a few seconds. Learn, base and query are drawn
independently from the same distribution. Datasets with ``n_base >=
cache_min_rows`` are written once to ``<cache_dir>/synthetic/`` as .npy (by
one process under a file lock, chunk by chunk into a memory map, renamed into place
when complete) and memory-mapped afterwards: 100M x 128 needs no more RAM than a
chunk. ``dtype: uint8`` stores the SIFT-like set as bytes (the same values).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..checks import InputError, check_positive_int
from ..store.sealing import cached_file
from .context import LoadContext
from .dataset import Dataset
from .reads import note_read
from .registry import register_loader

GENERATOR_VERSION = 1
CHUNK_ROWS = 65536
SPLITS = {"learn": 1, "base": 2, "query": 3}
_RANK, _DF = 8, 4.0
_MIPS_SPREAD = 0.7
KINDS = ("uniform", "sift", "mips")

log = logging.getLogger(__name__)


def _sift_model(dim: int, n_components: int, seed: int) -> dict:
    """Mixture parameters: weights (C,), means (C, D), loadings (C, D, r), noise (C, D)."""
    rng = np.random.default_rng([seed, 0])
    means = rng.gamma(0.6, 35.0, size=(n_components, dim))
    scale = np.sqrt(means + 4.0)  # spread grows with the mean, like counts
    decay = 1.2 / np.sqrt(1.0 + np.arange(_RANK))  # unequal latent variances: anisotropy
    loadings = rng.standard_normal((n_components, dim, _RANK)) * scale[:, :, None] * decay
    noise = scale * rng.uniform(0.5, 1.5, size=(n_components, dim))
    return {"weights": rng.dirichlet(np.full(n_components, 2.0)),
            "means": means.astype(np.float32), "loadings": loadings.astype(np.float32),
            "noise": noise.astype(np.float32)}


def _sift_chunk(model: dict, rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    comp = rng.choice(len(model["weights"]), size=n, p=model["weights"])
    z = rng.standard_normal((n, _RANK), dtype=np.float32)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    t = np.sqrt(_DF / rng.chisquare(_DF, size=n)).astype(np.float32)[:, None]
    order = np.argsort(comp, kind="stable")
    bounds = np.cumsum(np.bincount(comp, minlength=len(model["weights"])))
    start = 0
    for c, end in enumerate(bounds):
        if end > start:
            rows = order[start:end]
            dev = z[rows] @ model["loadings"][c].T + x[rows] * model["noise"][c]
            x[rows] = model["means"][c] + t[rows] * dev
        start = end
    np.clip(x, 0.0, 255.0, out=x)
    return np.rint(x, out=x)


def _mips_model(dim: int, n_components: int, seed: int) -> dict:
    """Cluster centres (C, D) and weights (C,) of the MIPS set's directions."""
    rng = np.random.default_rng([seed, 0])
    return {"weights": rng.dirichlet(np.full(n_components, 2.0)),
            "means": rng.standard_normal((n_components, dim)).astype(np.float32)}


def _mips_chunk(model: dict, rng: np.random.Generator, n: int, dim: int,
                norm_sigma: float) -> np.ndarray:
    comp = rng.choice(len(model["weights"]), size=n, p=model["weights"])
    x = model["means"][comp] + _MIPS_SPREAD * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x *= np.exp(norm_sigma * rng.standard_normal((n, 1))).astype(np.float32)
    return x


def generate(kind: str, n: int, dim: int = 128, seed: int = 0, split: str = "base",
             n_components: int = 64, out: np.ndarray | None = None,
             norm_sigma: float = 0.5) -> np.ndarray:
    """Generate ``n`` vectors of a synthetic distribution, chunk by chunk.

    Args:
        kind: ``uniform``, ``sift`` or ``mips``.
        n, dim: output shape (n, dim).
        seed: base seed; same parameters give the same bytes.
        split: ``learn``, ``base`` or ``query`` (independent streams).
        n_components: mixture components (``sift`` and ``mips``).
        out: optional (n, dim) array to fill (e.g. a .npy memmap; float32, or uint8 for
            sift).
        norm_sigma: spread of the log-normal norms (``mips`` only), > 0.

    Returns:
        (n, dim) float32: U[0,1) for uniform, integers 0..255 for sift, vectors of
        log-normal norms for mips.
    """
    if kind not in KINDS:
        raise InputError(f"synthetic kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if split not in SPLITS:
        raise InputError(f"synthetic split must be one of {list(SPLITS)}, got {split!r}")
    n, dim = check_positive_int(n, "n"), check_positive_int(dim, "dim")
    seed = check_positive_int(seed, "seed", minimum=0)
    components = check_positive_int(n_components, "n_components")
    if kind == "mips" and not (isinstance(norm_sigma, (int, float)) and
                               not isinstance(norm_sigma, bool) and 0 < norm_sigma <= 4):
        raise InputError(f"synthetic norm_sigma must be a number in (0, 4], got {norm_sigma!r}")
    model = (_sift_model(dim, components, seed) if kind == "sift" else
             _mips_model(dim, components, seed) if kind == "mips" else None)
    out = np.empty((n, dim), dtype=np.float32) if out is None else out
    for i, start in enumerate(range(0, n, CHUNK_ROWS)):
        rows = min(CHUNK_ROWS, n - start)
        rng = np.random.default_rng([seed, SPLITS[split], i])
        if kind == "uniform":
            out[start:start + rows] = rng.random((rows, dim), dtype=np.float32)
        elif kind == "sift":
            out[start:start + rows] = _sift_chunk(model, rng, rows, dim)
        else:
            out[start:start + rows] = _mips_chunk(model, rng, rows, dim, float(norm_sigma))
    return out


#: what a generated set may be stored as: float32, or uint8 for integers in 0..255
STORED_DTYPES = {"float32": np.dtype(np.float32), "uint8": np.dtype(np.uint8)}


def stored_dtype(dtype: str, where: str, integers_0_255: bool) -> np.dtype:
    """The numpy dtype of a generator's ``dtype`` key; uint8 only for integers 0..255."""
    if dtype not in STORED_DTYPES:
        raise InputError(f"{where}: dtype must be one of {list(STORED_DTYPES)}, got {dtype!r}")
    if dtype == "uint8" and not integers_0_255:
        raise InputError(f"{where}: dtype uint8 holds integers 0..255 only; these values are "
                         f"not (use float32)")
    return STORED_DTYPES[dtype]


def cached_array(cache_dir: Path, tag: str, split: str, n: int, dim: int, fill,
                 dtype: np.dtype = STORED_DTYPES["float32"]) -> np.ndarray:
    """A generated (n, dim) array of ``dtype`` stored once as .npy under
    cache_dir/synthetic/tag, written chunk by chunk (never whole in memory).

    ``fill(out)`` writes the data into an (n, dim) memmap of ``dtype``. One process
    generates (the others wait on the entry's lock); the file appears atomically
    when complete, sealed, and is memory-mapped read-only afterwards; a file
    whose seal fails is generated again (:func:`benchpq.store.sealing.cached_file`).
    """
    suffix = "" if dtype == STORED_DTYPES["float32"] else f"-{dtype.name}"
    path = cache_dir / "synthetic" / tag / f"{split}-n{n}{suffix}.npy"

    def write(tmp: Path) -> None:
        log.info("generating %s x %d %s vectors -> %s", n, dim, dtype.name, path)
        _fill_npy(tmp, n, dim, fill, dtype)
    cached_file(path, write, suffix=".npy")  # one process generates, the others wait
    note_read(path)
    return np.load(path, mmap_mode="r")


def _fill_npy(path: Path, n: int, dim: int, fill, dtype: np.dtype) -> None:
    """A new (n, dim) .npy file of ``dtype`` at ``path``, written by ``fill`` chunk by chunk."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, dim))
    fill(out)
    out.flush()
    del out


def _cached(cache_dir: Path, kind: str, n: int, dim: int, seed: int, split: str,
            n_components: int, dtype: np.dtype, norm_sigma: float = 0.5) -> np.ndarray:
    """``generate(...)`` stored once as .npy under cache_dir/synthetic, then memory-mapped."""
    tag = f"{kind}-v{GENERATOR_VERSION}-d{dim}-seed{seed}" + (
        f"-c{n_components}" if kind in ("sift", "mips") else "") + (
        f"-s{norm_sigma!r}" if kind == "mips" else "")
    return cached_array(cache_dir, tag, split, n, dim,
                        lambda out: generate(kind, n, dim, seed, split, n_components, out=out,
                                             norm_sigma=norm_sigma),
                        dtype)


def _load(ctx: LoadContext, kind: str, n_learn: int, n_base: int, n_query: int, dim: int,
          seed: int, n_components: int, cache_min_rows: int, dtype: str,
          norm_sigma: float = 0.5) -> Dataset:
    sizes = {"learn": n_learn, "base": n_base, "query": n_query}
    stored = stored_dtype(dtype, f"dataset {ctx.name!r}", integers_0_255=kind == "sift")
    cache = n_base >= cache_min_rows
    parts = {split: (_cached(ctx.cache_dir, kind, n, dim, seed, split, n_components, stored,
                             norm_sigma)
                     if cache else
                     generate(kind, n, dim, seed, split, n_components,
                              norm_sigma=norm_sigma).astype(stored, copy=False))
             for split, n in sizes.items()}
    what = {"uniform": "U[0,1)", "sift": f"SIFT-like mixture of {n_components}",
            "mips": f"embedding-like mixture of {n_components} directions, log-normal norms "
                    f"(sigma {norm_sigma})"}[kind]
    return Dataset(name=ctx.name, learn=parts["learn"], base=parts["base"], query=parts["query"],
                   metric="ip" if kind == "mips" else "l2",
                   info={"source": f"synthetic {what}, dim {dim}, seed {seed}, "
                                   f"generator v{GENERATOR_VERSION}",
                         "split": "learn, base and query drawn independently",
                         "groundtruth": "computed on demand"})


@register_loader("synthetic_uniform")
def load_synthetic_uniform(ctx: LoadContext, n_learn: int = 10000, n_base: int = 20000,
                           n_query: int = 200, dim: int = 128, seed: int = 0,
                           cache_min_rows: int = 200_000, dtype: str = "float32") -> Dataset:
    """Uniform U[0,1)^dim learn / base / query sets (float32)."""
    return _load(ctx, "uniform", n_learn, n_base, n_query, dim, seed, 1, cache_min_rows, dtype)


@register_loader("synthetic_sift")
def load_synthetic_sift(ctx: LoadContext, n_learn: int = 10000, n_base: int = 20000,
                        n_query: int = 200, dim: int = 128, n_components: int = 64,
                        seed: int = 0, cache_min_rows: int = 200_000,
                        dtype: str = "float32") -> Dataset:
    """SIFT-like learn / base / query sets (integers 0..255, stored as float32 or, with
    ``dtype: uint8``, as bytes like SIFT1B: a quarter of the disk and no float copy in a
    run), see the module doc."""
    return _load(ctx, "sift", n_learn, n_base, n_query, dim, seed, n_components, cache_min_rows,
                 dtype)


@register_loader("synthetic_mips")
def load_synthetic_mips(ctx: LoadContext, n_learn: int = 10000, n_base: int = 20000,
                        n_query: int = 200, dim: int = 64, n_components: int = 32,
                        norm_sigma: float = 0.5, seed: int = 0,
                        cache_min_rows: int = 200_000) -> Dataset:
    """Embedding-like float32 learn / base / query sets whose norms vary (log-normal,
    ``norm_sigma``), searched by inner product unless the config's ``metric`` says
    otherwise (``cosine``: the same directions, norms ignored); see the module doc."""
    return _load(ctx, "mips", n_learn, n_base, n_query, dim, seed, n_components,
                 cache_min_rows, "float32", norm_sigma)
