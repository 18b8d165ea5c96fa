"""Synthetic data calibrated to a real set: plugin loader ``calibrated``.

A mixture of local low-rank elliptical Gaussians fitted to any base file
(:func:`fit_calibration`), stored compactly as .npz, and sampled chunk by
chunk (:func:`generate_calibrated`). The named model ``siftsmall`` is fitted
on first use from the data folder's siftsmall base (about 6 s, deterministic)
and cached as ``<cache_dir>/calibration/siftsmall-v<FORMAT_VERSION>.npz``;
``python -m benchpq.datasets.calibrate FILE OUT.npz`` fits any other file (any
format :func:`benchpq.datasets.read_array` reads).

Model, for data x (n, D) (a sample of at most ``max_points`` rows):

1. k-means of x into C components; weight w_c = fraction of points;
2. per component, mean mu_c and each point's radial scale t_i =
   ||x_i - mu_c||² / mean_c ||x - mu_c||²; the PCA of the scale-normalised
   deviations (x_i - mu_c) / sqrt(t_i) gives the top ``rank`` directions
   times their standard deviations, L_c (D, r), and the standard deviation
   per dimension of what they leave, s_c (D,) -- a one-step elliptical
   (scale-mixture) fit, so that local density varies as in the data rather
   than as a Gaussian shell;
3. pooled over components: the quantiles of t and of the standardised
   latent coordinates; the residual entries standardised by s_c, as a
   Gaussian copula: per dimension the quantiles of its residuals (its own
   marginal: skew, heavy tails, a mass at a bound) and W (D, D), the
   symmetric square root of the correlation of their normal scores;
4. per component c and dimension d, a monotone marginal remap from K
   quantiles of draws of steps 1-3 for that component (``draw_knots``) to
   the same quantiles of the members' values x_d (``data_knots``), so that
   each component's per-dimension marginals -- in particular the fraction of
   values at the data's lower bound (zeros of SIFT or of image pixels) and
   which dimensions share it -- are the data's; this carries the fine
   structure that sub-space quantizers see (PQ at 8 dimensions per
   sub-space), which a Gaussian residual spreads out. The K levels are
   equally spaced between the Hazen plotting positions of the smallest and
   the largest of the component's n members, 1/(2n) and 1 - 1/(2n), so that
   the end knots stand for the same probability among the members as among
   the draws (mapping the whole range of 256 draws onto that of some 20
   members squeezed every component's tails: PQ mse 13% low at 32
   dimensions per sub-space on siftsmall, 21% on Fashion-MNIST);
5. the value range of each dimension, whether x is integral, and the common
   norm of its rows if they all have about the same norm (L2-normalised
   descriptors, e.g. SIFT's, whose norms vary by 0.1%).

Sampling: c ~ w, tau ~ the t quantiles, z (r,) with entries from the latent
quantiles, e (D,) = per-dimension inverse CDFs of Phi(g), g ~ N(0, W W^T);
y = mu_c + sqrt(tau) (L_c z + s_c * e); each entry moved by component c's
remap (piecewise linear between knots, clamped to the end knots), clipped to
the data range, rescaled to the common norm (if any) and clipped again,
rounded when the data were integers. Chunk i of split s is drawn from
``np.random.default_rng([seed, s, i])`` (as :mod:`.synthetic`), so the bytes
depend only on the parameters and memory stays at one chunk besides the output.
The model stores summaries only (means, directions, scales and quantiles of
groups of points), never a data vector.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..checks import InputError, as_matrix, check_positive_int
from ..store.sealing import cached_file, trusted
from .context import LoadContext, resolve_cache_dir, resolve_data_dir
from .dataset import Dataset
from .formats import read_array
from .reads import tracking_reads
from .registry import register_loader
from .synthetic import CHUNK_ROWS, SPLITS, cached_array, stored_dtype

#: named models, fitted on first use from a base file of the data folder (then cached)
NAMED_MODELS = {"siftsmall": "siftsmall/siftsmall_base.fvecs"}
FORMAT_VERSION = 3
KMEANS_ROWS = 16384  # rows per block of the k-means assignment
REMAP_ROWS = 8192    # rows per block of the marginal remap
KNOT_DRAWS = 256     # draws per component to place its remap's source knots
KNOT_BATCH_VALUES = 1 << 24  # values drawn at once while placing them
NORM_SPREAD = 0.01   # norms' std over mean below which the data count as normalised


# -- fitting ----------------------------------------------------------------------------
def kmeans(y: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means of y (n, D) float64 from k distinct random points; (n,) int64 labels."""
    centroids = y[rng.choice(y.shape[0], k, replace=False)].copy()
    for _ in range(iterations):
        labels = _assign(y, centroids)
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, y)
        live = counts > 0
        centroids[live] = sums[live] / counts[live, None]
    return _assign(y, centroids)


def _assign(y: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    norms = (centroids ** 2).sum(axis=1)
    labels = np.empty(y.shape[0], np.int64)
    for start in range(0, y.shape[0], KMEANS_ROWS):
        block = y[start:start + KMEANS_ROWS]
        labels[start:start + KMEANS_ROWS] = (norms - 2 * block @ centroids.T).argmin(axis=1)
    return labels


def _fixed_norm(x: np.ndarray) -> float:
    """The mean L2 norm of x's rows if they all have about the same norm (normalised
    descriptors: relative spread below NORM_SPREAD), else 0."""
    norms = np.linalg.norm(x, axis=1)
    mean = norms.mean()
    return float(mean) if mean > 0 and norms.std() < NORM_SPREAD * mean else 0.0


def _normal_scores(residuals: np.ndarray) -> np.ndarray:
    """(n, D) float64: each column of residuals mapped through its own empirical CDF (mid
    ranks) to standard normal scores -- the Gaussian copula's view of the residuals."""
    # imported here: scipy.stats takes about a second, and every run's child imports this module
    from scipy.special import ndtri
    from scipy.stats import rankdata
    n = residuals.shape[0]
    ranks = np.empty_like(residuals)
    for d in range(residuals.shape[1]):
        ranks[:, d] = rankdata(residuals[:, d])
    return ndtri((ranks - 0.5) / n)


def _correlation_root(scores: np.ndarray) -> np.ndarray:
    """(D, D) float32 W, the symmetric square root of the correlation of scores (n, D)."""
    cov = scores.T @ scores / scores.shape[0]
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(np.where(sd > 0, sd, 1), np.where(sd > 0, sd, 1))
    np.fill_diagonal(corr, 1.0)
    values, vectors = np.linalg.eigh(corr)
    return ((vectors * np.sqrt(np.maximum(values, 0))) @ vectors.T).astype(np.float32)


def fit_calibration(x, n_components: int = 512, rank: int = 8, n_quantiles: int = 257,
                    n_knots: int = 9, max_points: int = 200_000, iterations: int = 25,
                    seed: int = 0) -> dict:
    """Fit the mixture of the module doc to x (n, D); returns the model as a dict of arrays.

    Args:
        x: (n, D) real vectors (any numeric dtype; a sample of at most
            ``max_points`` rows is used).
        n_components: mixture components C (k-means clusters); components
            left with fewer than 3 points are dropped.
        rank: directions kept per component (at most D).
        n_quantiles: quantiles stored of each pooled distribution (radial
            scale, latent coordinates, each dimension's residuals).
        n_knots: quantiles per component and dimension of the marginal remap
            (step 4 of the module doc).
        iterations: k-means iterations. seed: sampling and k-means seed.

    The dict (see :func:`save_calibration`) holds ``weights`` (C,), ``means``
    (C, D), ``loadings`` (C, D, r), ``noise`` (C, D), ``scale_quantiles``
    (n_quantiles,), ``latent_quantiles``, ``noise_quantiles`` (D, n_quantiles),
    ``noise_mixing`` (D, D), ``draw_knots`` and ``data_knots`` (C, n_knots, D)
    float16, ``low``/``high`` (D,), ``integer``, ``norm``, ``n_fit`` and ``version``.
    """
    x = as_matrix(x, "x", finite=True)
    n, dim = x.shape
    C = check_positive_int(n_components, "n_components")
    rank = check_positive_int(rank, "rank", 1, dim)
    n_quantiles = check_positive_int(n_quantiles, "n_quantiles", 2)
    rng = np.random.default_rng(check_positive_int(seed, "seed", 0))
    if n > max_points:
        x = x[np.sort(rng.choice(n, check_positive_int(max_points, "max_points"),
                                 replace=False))]
    if x.shape[0] < 3 * C:
        raise InputError(f"fitting {C} components needs at least {3 * C} vectors, got "
                         f"{x.shape[0]}")
    y = np.asarray(x, dtype=np.float64)
    labels = kmeans(y, C, check_positive_int(iterations, "iterations"), rng)

    levels = np.linspace(0, 1, n_quantiles)

    def quantiles(parts) -> np.ndarray:
        return np.quantile(np.concatenate(parts), levels).astype(np.float32)

    knot_levels = np.linspace(0, 1, check_positive_int(n_knots, "n_knots", 2))
    weights, means, loadings, noise, scales, latents, residuals = [], [], [], [], [], [], []
    data_knots, member_levels = [], []
    for c in range(C):
        members = y[labels == c]
        if members.shape[0] < 3:
            continue
        mu = members.mean(axis=0)
        dev = members - mu
        t = (dev ** 2).sum(axis=1)
        t = t / t.mean() if t.mean() > 0 else np.ones_like(t)
        normalised = dev / np.sqrt(np.maximum(t, 1e-3))[:, None]
        _, sv, vt = np.linalg.svd(normalised, full_matrices=False)
        r = min(rank, vt.shape[0])
        directions = np.zeros((dim, rank))
        directions[:, :r] = vt[:r].T * (sv[:r] / np.sqrt(members.shape[0]))
        coords = normalised @ vt[:r].T
        rest = normalised - coords @ vt[:r]
        sd = rest.std(axis=0)
        weights.append(members.shape[0])
        means.append(mu)
        loadings.append(directions)
        noise.append(sd)
        scales.append(t)
        latents.append((coords / np.maximum(coords.std(axis=0), 1e-12)).ravel())
        residuals.append(np.divide(rest, sd, out=np.zeros_like(rest), where=sd > 0))
        member_levels.append(_hazen_levels(members.shape[0], knot_levels))
        data_knots.append(np.quantile(members, member_levels[-1], axis=0, method="hazen"))
    model = {"weights": np.asarray(weights, np.float64) / sum(weights),
            "means": np.asarray(means, np.float16), "loadings": np.asarray(loadings, np.float16),
            "noise": np.asarray(noise, np.float16),
            "scale_quantiles": quantiles(scales), "latent_quantiles": quantiles(latents),
            "noise_quantiles": np.quantile(np.concatenate(residuals), levels, axis=0)
                                .T.astype(np.float32),
            "noise_mixing": _correlation_root(_normal_scores(np.concatenate(residuals))),
            "low": y.min(axis=0).astype(np.float32), "high": y.max(axis=0).astype(np.float32),
            "integer": np.bool_(np.all(y == np.rint(y))), "norm": np.float64(_fixed_norm(y)),
            "n_fit": np.int64(x.shape[0]), "version": np.int64(FORMAT_VERSION),
            "data_knots": np.asarray(data_knots, np.float16)}
    model["draw_knots"] = _draw_knots(model, np.asarray(member_levels), rng)
    return model


def _hazen_levels(n: int, spacing: np.ndarray) -> np.ndarray:
    """(K,) levels spread as spacing (K,) over [0, 1] between the Hazen plotting positions
    of the smallest and largest of n values, 1/(2n) and 1 - 1/(2n)."""
    return 0.5 / n + spacing * (1 - 1 / n)


def _draw_knots(model: dict, levels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(C, K, D) float16: per component c, the quantiles at levels[c] (C, K) of
    KNOT_DRAWS draws of the model before its remap, made strictly increasing along K."""
    n_comp, dim = model["means"].shape
    knots = np.empty((n_comp, levels.shape[1], dim))
    batch = max(1, KNOT_BATCH_VALUES // (KNOT_DRAWS * dim))
    for start in range(0, n_comp, batch):
        comps = np.arange(start, min(start + batch, n_comp))
        y = _draw(model, rng, np.repeat(comps, KNOT_DRAWS)).reshape(comps.size, KNOT_DRAWS, dim)
        for i, c in enumerate(comps):
            knots[c] = np.quantile(y[i], levels[c], axis=0, method="hazen")
    # float16 steps, so that the remap's segments keep a positive width once stored
    knots = knots.astype(np.float16).astype(np.float64)
    step = np.maximum(np.abs(knots), 1) * 2.0 ** -9
    for k in range(1, levels.shape[1]):
        knots[:, k] = np.maximum(knots[:, k], knots[:, k - 1] + step[:, k - 1])
    return knots.astype(np.float16)


MODEL_KEYS = ("weights", "means", "loadings", "noise", "scale_quantiles", "latent_quantiles",
              "noise_quantiles", "noise_mixing", "draw_knots", "data_knots", "low", "high",
              "integer", "norm", "n_fit", "version")


def save_calibration(model: dict, path) -> Path:
    """Write a fitted model as a compressed .npz (float16 loadings and noise)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: model[k] for k in MODEL_KEYS})
    return path


def load_calibration(name_or_path, data_dir=None, cache_dir=None) -> dict:
    """A model from a .npz path, or by name (:data:`NAMED_MODELS`): fitted from the data
    folder's base file on first use and cached under ``<cache_dir>/calibration/``."""
    path = Path(name_or_path).expanduser()
    if path.suffix != ".npz":
        path = named_model(str(name_or_path), data_dir, cache_dir)
    if not path.is_file():
        raise InputError(f"calibration {name_or_path!r}: no file {path}")
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in MODEL_KEYS if k not in f.files]
        if missing:
            raise InputError(f"{path}: not a calibration file (missing {', '.join(missing)})")
        model = {k: f[k] for k in MODEL_KEYS}
    if int(model["version"]) != FORMAT_VERSION:
        raise InputError(f"{path}: calibration format {int(model['version'])}, this benchpq "
                         f"reads {FORMAT_VERSION}")
    model["digest"] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return model


def named_model(name: str, data_dir=None, cache_dir=None) -> Path:
    """The cached .npz of the named model, fitted (with the CLI's defaults) if absent.

    The file name carries :data:`FORMAT_VERSION`, so a model cached by an older benchpq
    is left alone and the named model refitted in the current format."""
    if name not in NAMED_MODELS:
        raise InputError(f"calibration {name!r}: not a .npz file nor a named model "
                         f"(named: {', '.join(sorted(NAMED_MODELS))})")
    path = resolve_cache_dir(cache_dir) / "calibration" / f"{name}-v{FORMAT_VERSION}.npz"
    base = resolve_data_dir(data_dir) / NAMED_MODELS[name]
    if not trusted(path, warn=False) and not base.is_file():
        raise InputError(f"calibration {name!r} is fitted from {base}, which is absent (set "
                         f"BENCHPQ_DATA or data_dir to the folder holding {base.parent.name}/)")
    def fit(tmp: Path) -> Path:
        with tracking_reads():  # the base fits the model; the data set is what it samples
            x = read_array(base)
        return save_calibration(fit_calibration(x), tmp)

    return cached_file(path, fit, suffix=".npz")


# -- sampling -----------------------------------------------------------------------------
def _inverse_cdf(quantiles: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Samples of the distribution with these (equally spaced) quantiles, for uniform u."""
    return np.interp(u, np.linspace(0, 1, quantiles.size, dtype=np.float32),
                     quantiles).astype(np.float32)


def _marginals(quantiles: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(n, D) float32: column d of u (n, D) in [0, 1] through the inverse CDF with the
    equally spaced quantiles quantiles[d] (D, Q), linear between them."""
    steps = quantiles.shape[1] - 1
    pos = np.clip(u, 0, 1) * steps
    left = np.minimum(pos.astype(np.int64), steps - 1)
    frac = (pos - left).astype(np.float32)
    flat = quantiles.astype(np.float32).ravel()
    left += np.arange(quantiles.shape[0]) * (steps + 1)
    return flat[left] * (1 - frac) + flat[left + 1] * frac


def _draw(model: dict, rng: np.random.Generator, comp: np.ndarray) -> np.ndarray:
    """(n, D) float32 draws of the components comp (n,) of the model before its marginal
    remap, clipping and rounding: mu_c + sqrt(tau) (L_c z + s_c * e)."""
    from scipy.special import ndtr
    means = model["means"].astype(np.float32)
    loadings = model["loadings"].astype(np.float32)
    noise = model["noise"].astype(np.float32)
    n, dim, rank = comp.size, loadings.shape[1], loadings.shape[2]
    tau = _inverse_cdf(model["scale_quantiles"], rng.random(n))
    z = _inverse_cdf(model["latent_quantiles"], rng.random((n, rank), dtype=np.float32))
    y = _marginals(model["noise_quantiles"],
                   ndtr(rng.standard_normal((n, dim), dtype=np.float32) @ model["noise_mixing"].T))
    root = np.sqrt(tau).astype(np.float32)[:, None]
    for c, rows in _rows_by_component(comp, means.shape[0]):
        y[rows] = means[c] + root[rows] * (z[rows] @ loadings[c].T + y[rows] * noise[c])
    return y


def _rows_by_component(comp: np.ndarray, n_components: int):
    """(c, rows) for each component c that comp (n,) names, rows the indices into comp."""
    order = np.argsort(comp, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(comp, minlength=n_components))])
    for c in range(n_components):
        if bounds[c + 1] > bounds[c]:
            yield c, order[bounds[c]:bounds[c + 1]]


def _remap(y: np.ndarray, comp: np.ndarray, draw_knots: np.ndarray,
           data_knots: np.ndarray) -> np.ndarray:
    """Each entry y[i, d] moved by the piecewise-linear monotone map that sends component
    comp[i]'s draw quantiles draw_knots[c, :, d] (C, K, D) to its data quantiles
    data_knots[c, :, d], clamped to the end knots; y (n, D) float32, in place."""
    n_comp, knots, dim = draw_knots.shape
    src = draw_knots.astype(np.float32).ravel()
    dst = data_knots.astype(np.float32).ravel()
    for start in range(0, y.shape[0], REMAP_ROWS):
        block = y[start:start + REMAP_ROWS]
        # flat index of knot 0 of (comp[i], d), then of the segment's left knot
        at = (comp[start:start + REMAP_ROWS, None] * (knots * dim)
              + np.arange(dim)[None, :])
        left = at.copy()
        for k in range(1, knots - 1):
            left += (block >= src[at + k * dim]) * dim
        lo_src, hi_src = src[left], src[left + dim]
        frac = np.clip((block - lo_src) / np.maximum(hi_src - lo_src, np.float32(1e-6)), 0, 1)
        lo_dst = dst[left]
        block[:] = lo_dst + frac * (dst[left + dim] - lo_dst)
    return y


def _chunk(model: dict, rng: np.random.Generator, n: int) -> np.ndarray:
    """n (n, D) float32 samples of the model (see the module doc)."""
    comp = rng.choice(model["weights"].size, size=n, p=model["weights"])
    y = _remap(_draw(model, rng, comp), comp, model["draw_knots"], model["data_knots"])
    np.clip(y, model["low"], model["high"], out=y)
    if float(model["norm"]) > 0:
        y *= np.float32(model["norm"]) / np.maximum(np.linalg.norm(y, axis=1, keepdims=True),
                                                    np.float32(1e-12))
        np.clip(y, model["low"], model["high"], out=y)
    return np.rint(y, out=y) if bool(model["integer"]) else y


def generate_calibrated(model: dict, n: int, seed: int = 0, split: str = "base",
                        out: np.ndarray | None = None) -> np.ndarray:
    """(n, D) float32 samples of a calibration model, deterministic in (model, seed, split).

    ``out`` may be an (n, D) array to fill (e.g. a .npy memmap; float32, or uint8 for a
    model of integers within 0..255).
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {list(SPLITS)}, got {split!r}")
    n = check_positive_int(n, "n")
    seed = check_positive_int(seed, "seed", 0)
    dim = model["means"].shape[1]
    out = np.empty((n, dim), np.float32) if out is None else out
    for i, start in enumerate(range(0, n, CHUNK_ROWS)):
        rows = min(CHUNK_ROWS, n - start)
        out[start:start + rows] = _chunk(model, np.random.default_rng([seed, SPLITS[split], i]),
                                         rows)
    return out


@register_loader("calibrated")
def load_calibrated(ctx: LoadContext, calibration: str = "siftsmall", n_learn: int | None = None,
                    n_base: int = 10000, n_query: int = 100, seed: int = 0,
                    cache_min_rows: int = 200_000, dtype: str = "float32") -> Dataset:
    """Learn / base / query sets sampled from a calibration model (module doc).

    ``calibration``: a named model (:data:`NAMED_MODELS`) or a .npz path. ``n_learn`` None
    trains on the base set (as siftsmall); otherwise learn is drawn
    independently. Sets with ``n_base >= cache_min_rows`` are written once to
    ``<cache_dir>/synthetic/`` and memory-mapped afterwards. ``dtype: uint8`` stores
    the vectors as bytes, for models of integers within 0..255 (SIFT's).
    """
    model = load_calibration(calibration, ctx.data_dir, ctx.cache_dir)
    dim = model["means"].shape[1]
    stored = stored_dtype(dtype, f"dataset {ctx.name!r}", integers_0_255=bool(
        model["integer"]) and float(np.min(model["low"])) >= 0
        and float(np.max(model["high"])) <= 255)
    tag = f"calibrated-{Path(str(calibration)).stem}-{model['digest']}-seed{seed}"
    cache = n_base >= cache_min_rows

    def draw(split: str, n: int) -> np.ndarray:
        if cache:
            return cached_array(ctx.cache_dir, tag, split, n, dim,
                                lambda out: generate_calibrated(model, n, seed, split, out),
                                stored)
        return generate_calibrated(model, n, seed, split).astype(stored, copy=False)

    base = draw("base", n_base)
    learn = base if n_learn is None else draw("learn", n_learn)
    return Dataset(name=ctx.name, learn=learn, base=base, query=draw("query", n_query),
                   info={"source": f"mixture calibrated to {calibration} (model "
                                   f"{model['digest']}, {model['weights'].size} components), "
                                   f"seed {seed}",
                         "split": "learn = base" if n_learn is None else
                                  "learn, base and query drawn independently",
                         "groundtruth": "computed on demand"})
