"""Exact k-nearest-neighbour ground truth (squared L2, inner product), chunked and cached.

Metric (:mod:`benchpq.datasets.metric`): ``l2`` ranks by squared distance, ``ip`` (and
``cosine``, whose vectors the dataset holds normalised) by inner product, largest first;
internally both rank smaller first (the negated inner product), ties by the smaller id.

Method: under ``l2`` the base is centred on its mean (distances do not change, float32
cancellation shrinks), then for blocks of base rows and of queries the
float32 distances ``||x||^2 - 2 q.x + ||q||^2`` (under ``ip``: ``-q.x``, uncentred; numpy
BLAS, its threads) keep the best ``k + max(k, 16)`` candidates per query. The candidates
are re-ranked with exact float64 distances computed from the original vectors, ties
broken by the smaller id. A query is redone exactly over the whole base when the float32
error bound could have let a true top-k vector (or a tie at the k-th distance)
fall out of its candidates, so the result is exact, not approximate.

Memory: one (1024 x 16384) float32 block plus (nq x C) candidates; the base
may be a memory map and is read once (after one pass for its mean). A line with the rate
and the time left is logged every 10 s. The candidates are saved every minute to
``<hash>.partial-{a,b}.npz`` beside the cache file (sealed, the two in turn): a computation
that is killed resumes from the furthest one that verifies when asked again, and both are
removed when the result is cached.

Results are cached in ``<cache_dir>/groundtruth/<hash>.npz`` where the hash is
a blake2b of the bytes, shapes and dtypes of base and query, of k and of the metric. When
several processes ask for the same ground truth at once, one computes it under
a file lock and the others read its file (see :mod:`benchpq.store.cachefiles`).
"""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from ..checks import InputError, as_matrix, check_k
from ..progress import Progress
from ..store import sealing
from ..store.cachefiles import entry_lock
from ..store.mapped import release_pages
from .context import resolve_cache_dir
from .metric import kernel_metric, metric_values, ranking_distances

log = logging.getLogger(__name__)

GT_VERSION = b"benchpq-groundtruth-v1"
_BASE_BLOCK = 16384
_QUERY_BLOCK = 1024
_EPS32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff
#: seconds of computation between two checkpoints of a ground truth being computed
CHECKPOINT_S = 60.0
CHECKPOINT_ARRAYS = ("mu", "start", "xn_max", "best_d", "best_i")


def content_hash(*arrays: np.ndarray, extra: bytes = b"", chunk_rows: int = 65536) -> str:
    """blake2b (160-bit hex) of the shapes, dtypes and bytes of ``arrays``, read chunkwise."""
    h = hashlib.blake2b(digest_size=20)
    h.update(extra)
    for x in arrays:
        h.update(f"|{x.shape}|{x.dtype.str}|".encode())
        for start in range(0, x.shape[0], chunk_rows):
            h.update(np.ascontiguousarray(x[start:start + chunk_rows]).data)
            release_pages(x[start:start + chunk_rows])
    return h.hexdigest()


def _gather(base: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """base[ids] as float64 for a 2-D id array (ids must be valid)."""
    flat = ids.ravel()
    order = np.argsort(flat, kind="stable")  # sorted reads are kinder to memory maps
    rows = np.empty((flat.size, base.shape[1]), dtype=np.float64)
    rows[order] = base[flat[order]]
    release_pages(base)  # the pages read around each row (the kernel reads ahead)
    return rows.reshape(ids.shape + (base.shape[1],))


def _exact64(base: np.ndarray, query: np.ndarray, ids: np.ndarray,
             metric: str = "l2") -> np.ndarray:
    """Float64 ranking distances (:func:`~benchpq.datasets.metric.ranking_distances`: squared
    L2, or the negated inner product) from query i to base[ids[i, j]]; inf where ids < 0."""
    out = np.full(ids.shape, np.inf)
    block = max(1, (1 << 22) // max(1, ids.shape[1] * base.shape[1]))
    for s in range(0, ids.shape[0], block):
        ii = ids[s:s + block]
        valid = ii >= 0
        rows = _gather(base, np.where(valid, ii, 0))
        d = ranking_distances(rows, np.asarray(query[s:s + block], dtype=np.float64), metric)
        out[s:s + block] = np.where(valid, d, np.inf)
    return out


def exact_distances(base, query, ids, metric: str = "l2") -> np.ndarray:
    """Exact ranking distances from each query to the given base ids: squared L2 under
    ``l2``, the negated inner product under ``ip`` and ``cosine`` (smaller is nearer).

    Args:
        base: (n_base, d) vectors.
        query: (nq, d) vectors.
        ids: (nq, k) integer ids into base; -1 marks a missing result.
        metric: ``l2``, ``ip`` or ``cosine`` (:mod:`benchpq.datasets.metric`).

    Returns:
        (nq, k) float32 distances (computed in float64); inf where ids is -1.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[0] != query.shape[0] or ids.dtype.kind not in "iu":
        raise InputError(f"ids: expected an integer array ({query.shape[0]}, k), got "
                         f"{ids.shape} {ids.dtype}")
    if ids.size and (ids.max() >= base.shape[0] or ids.min() < -1):
        raise InputError(f"ids: values must be in [-1, {base.shape[0]}), found "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    return _exact64(base, query, ids.astype(np.int64, copy=False),
                    kernel_metric(metric)).astype(np.float32)


def _topk_sorted(d: np.ndarray, ids: np.ndarray, k: int):
    """Per row, the k smallest (distance, id) pairs in (distance, id) order."""
    order = np.lexsort((ids, d), axis=-1)[:, :k]
    return np.take_along_axis(ids, order, 1), np.take_along_axis(d, order, 1)


def _exact_row(base: np.ndarray, q: np.ndarray, k: int, metric: str = "l2"):
    """Exact top-k of one query over the whole base, in float64."""
    q = np.asarray(q, dtype=np.float64)[None]
    d = np.empty(base.shape[0])
    for s in range(0, base.shape[0], _BASE_BLOCK):
        rows = np.asarray(base[s:s + _BASE_BLOCK], dtype=np.float64)[None]
        d[s:s + _BASE_BLOCK] = ranking_distances(rows, q, metric)[0]
        release_pages(base[s:s + _BASE_BLOCK])
    kth = np.partition(d, k - 1)[k - 1]
    cand = np.flatnonzero(d <= kth)
    ids, dist = _topk_sorted(d[cand][None], cand[None], k)
    return ids[0], dist[0]


def _base_mean(base: np.ndarray) -> np.ndarray:
    """The base's mean (float32), summed in float64 block by block."""
    mu = np.zeros(base.shape[1])
    for s in range(0, base.shape[0], _BASE_BLOCK):
        mu += np.asarray(base[s:s + _BASE_BLOCK], dtype=np.float64).sum(0)
        release_pages(base[s:s + _BASE_BLOCK])
    return (mu / base.shape[0]).astype(np.float32)


def _candidates(base: np.ndarray, query: np.ndarray, c: int, checkpoint: Path | None = None,
                metric: str = "l2"):
    """Best ``c`` ids per query by float32 ranking distance; also their worst distance and
    error bound.

    With ``checkpoint``, the state after a block of base rows is saved there (sealed)
    when :data:`CHECKPOINT_S` seconds have passed since the last save, and a computation
    finding a checkpoint that verifies resumes after the rows it covers.
    """
    nb, dim = base.shape
    state = _resume(checkpoint, query.shape[0], c, dim) if checkpoint is not None else None
    saves = 0
    if state is None:  # centring changes inner products: only l2 is centred
        mu = _base_mean(base) if metric == "l2" else np.zeros(dim, np.float32)
        state = {"mu": mu, "start": np.int64(0), "xn_max": np.float64(0.0),
                 "best_d": np.full((query.shape[0], c), np.inf, dtype=np.float32),
                 "best_i": np.full((query.shape[0], c), -1, dtype=np.int64)}
    mu, best_d, best_i = state["mu"], state["best_d"], state["best_i"]
    xn_max = float(state["xn_max"])
    q = np.asarray(query, dtype=np.float32) - mu
    qn = np.einsum("ij,ij->i", q, q, dtype=np.float64)
    progress = Progress(f"ground truth ({q.shape[0]:,} queries, top-{c} candidates)", nb,
                        "base rows", done=int(state["start"]))
    saved = time.monotonic()
    for s in range(int(state["start"]), nb, _BASE_BLOCK):
        xb = np.asarray(base[s:s + _BASE_BLOCK], dtype=np.float32) - mu
        release_pages(base[s:s + _BASE_BLOCK])  # a mapped base does not stay resident
        xn64 = np.einsum("ij,ij->i", xb, xb, dtype=np.float64)
        xn_max = max(xn_max, float(xn64.max()))
        xn = xn64.astype(np.float32)
        for t in range(0, q.shape[0], _QUERY_BLOCK):
            d = q[t:t + _QUERY_BLOCK] @ xb.T
            if metric == "l2":
                d *= -2
                d += xn
                d += qn[t:t + _QUERY_BLOCK, None].astype(np.float32)
            else:
                np.negative(d, out=d)
            if d.shape[1] > c:  # shrink the block to its own best c first
                part = np.argpartition(d, c - 1, axis=1)[:, :c]
                d, ids = np.take_along_axis(d, part, 1), part + s
            else:
                ids = np.broadcast_to(np.arange(s, s + xb.shape[0]), d.shape)
            d = np.concatenate([best_d[t:t + _QUERY_BLOCK], d], 1)
            ids = np.concatenate([best_i[t:t + _QUERY_BLOCK], ids], 1)
            keep = np.argpartition(d, c - 1, axis=1)[:, :c]
            best_d[t:t + _QUERY_BLOCK] = np.take_along_axis(d, keep, 1)
            best_i[t:t + _QUERY_BLOCK] = np.take_along_axis(ids, keep, 1)
        done = min(s + _BASE_BLOCK, nb)
        progress.advance(done - s)
        if checkpoint is not None and done < nb and time.monotonic() - saved >= CHECKPOINT_S:
            # two slots, written in turn: a kill between a file and its seal leaves the other
            _save(_slots(checkpoint)[saves % 2], mu=mu, start=np.int64(done),
                  xn_max=np.float64(xn_max), best_d=best_d, best_i=best_i)
            saves += 1
            saved = time.monotonic()
    tol = (2 * dim + 16) * _EPS32 * (qn + xn_max)
    return best_i, best_d.max(axis=1).astype(np.float64), tol


def _slots(checkpoint: Path) -> tuple[Path, Path]:
    """The two files a checkpoint is written to in turn."""
    stem = checkpoint.name.removesuffix(".npz")
    return checkpoint.with_name(f"{stem}-a.npz"), checkpoint.with_name(f"{stem}-b.npz")


def _resume(checkpoint: Path, nq: int, c: int, dim: int) -> dict | None:
    """The state of the furthest checkpoint slot that verifies and fits this computation."""
    states = [s for s in (_read_slot(path, nq, c, dim) for path in _slots(checkpoint)) if s]
    if not states:
        return None
    state = max(states, key=lambda s: int(s["start"]))
    log.info("ground truth: resuming from %s after %d base rows", checkpoint.name,
             int(state["start"]))
    return state


def _read_slot(path: Path, nq: int, c: int, dim: int) -> dict | None:
    if not path.exists():
        return None
    try:
        sealing.verify(path)
        with np.load(path, allow_pickle=False) as f:
            state = {name: f[name] for name in CHECKPOINT_ARRAYS}
        if state["best_d"].shape != (nq, c) or state["best_i"].shape != (nq, c) \
                or state["mu"].shape != (dim,):
            raise InputError(f"shapes {state['best_i'].shape}, {state['mu'].shape}")
    except (sealing.UntrustedEntry, InputError, OSError, ValueError, KeyError) as exc:
        log.warning("ground-truth checkpoint %s is not used (%s)", path, exc)
        return None
    return state


def _compute(base: np.ndarray, query: np.ndarray, k: int, checkpoint: Path | None = None,
             metric: str = "l2"):
    """The ground truth of ``query``: :func:`_exact_topk` (a cache miss computes this)."""
    return _exact_topk(base, query, k, checkpoint, metric)


def _exact_topk(base: np.ndarray, query: np.ndarray, k: int, checkpoint: Path | None = None,
                metric: str = "l2"):
    """Exact top-k (ids int64, ranking distances float64) of every query."""
    nb = base.shape[0]
    c = min(nb, k + max(k, 16))
    cand, worst, tol = _candidates(base, query, c, checkpoint, metric)
    ids, dist = _topk_sorted(_exact64(base, query, cand, metric), cand, k)
    # exact unless a dropped vector could be as close as the k-th: redo those
    redo = np.flatnonzero(dist[:, -1] >= worst - tol) if c < nb else []
    for i in redo:
        ids[i], dist[i] = _exact_row(base, query[i], k, metric)
    if len(redo):
        log.info("ground truth: %d of %d queries recomputed exhaustively", len(redo), len(ids))
    return ids, dist


def ground_truth(base, query, k: int = 100, cache_dir=None, use_cache: bool = True,
                 refresh: bool = False, metric: str = "l2"):
    """Exact k nearest neighbours of each query in base, by ``metric``.

    Args:
        base: (n_base, d) float32 (or numeric) vectors; may be a memory map.
        query: (nq, d) vectors of the same dimension.
        k: neighbours per query, 1 <= k <= n_base.
        cache_dir: cache directory (default ``$BENCHPQ_CACHE`` or
            ``~/.cache/benchpq``); results go to ``<cache_dir>/groundtruth/``.
        use_cache: read and write the cache.
        refresh: compute again and replace the cached file (``force=true``).
        metric: ``l2`` (squared distance), ``ip`` (inner product, largest first) or
            ``cosine`` (``ip``; the caller gives normalised vectors).

    A cached file is used only if its seal verifies (:mod:`benchpq.store.sealing`) and
    it passes :func:`check_groundtruth`; otherwise it is computed again.

    Returns:
        ids (nq, k) int64 nearest first, ties broken by the smaller id;
        dist (nq, k) float32 squared distances (``l2``) or inner products (``ip``).
    """
    metric = kernel_metric(metric)
    if not isinstance(base, np.ndarray) or base.ndim != 2:
        base = as_matrix(base, "base", finite=False)
    query = as_matrix(query, "query", dim=base.shape[1])
    k = check_k(k, base.shape[0])
    if not use_cache:
        ids, dist = _compute(base, query, k, metric=metric)
        return ids, metric_values(dist, metric).astype(np.float32)
    named = f"|k={k}" + (f"|metric={metric}" if metric != "l2" else "")
    key = content_hash(base, query, extra=GT_VERSION + named.encode())
    path = resolve_cache_dir(cache_dir) / "groundtruth" / f"{key}.npz"
    cached = None if refresh else _read_cache(path, base, query, k, metric)
    if cached is not None:
        return cached
    # One process computes; the others wait for its file instead of computing it again.
    with entry_lock(path, required=False) as locked:
        cached = _read_cache(path, base, query, k, metric) if locked and not refresh else None
        if cached is not None:
            return cached
        log.info("computing ground truth: %d queries, top-%d of %d base vectors (%s) -> %s",
                 query.shape[0], k, base.shape[0], metric, path)
        checkpoint = path.with_name(f"{key}.partial.npz")
        ids, dist = _compute(base, query, k, checkpoint, metric)
        dist = metric_values(dist, metric).astype(np.float32)
        _save(path, ids=ids, dist=dist)
        for slot in _slots(checkpoint):
            try:
                sealing.discard(slot)
            except OSError:  # an unusable cache folder: nothing was saved there
                pass
    return ids, dist


def _read_cache(path: Path, base, query, k: int, metric: str = "l2"):
    """(ids int64, dist float32) from a sealed cache file that checks out, else None."""
    if not path.exists():
        return None
    try:
        sealing.verify(path)
        with np.load(path, allow_pickle=False) as f:
            ids, dist = f["ids"], f["dist"]
        if ids.shape != (query.shape[0], k) or dist.shape != ids.shape:
            raise InputError(f"shape {ids.shape}, expected {(query.shape[0], k)}")
        check_groundtruth(base, query, ids, what=f"cached ground truth {path.name}",
                          metric=metric)
    except (sealing.UntrustedEntry, InputError, OSError, ValueError, KeyError) as exc:
        log.warning("cached ground truth %s is not used (%s): computing it again", path, exc)
        return None
    return ids.astype(np.int64), dist.astype(np.float32)


def _save(path: Path, **arrays: np.ndarray) -> None:
    """``arrays`` as a sealed .npz at ``path``; a cache that cannot be written is a warning."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    try:
        sealing.write_sealed(path, write)
    except OSError as exc:
        log.warning("could not save %s (%s)", path, exc)


def ensure_groundtruth(ds, k: int = 100, cache_dir=None, refresh: bool = False):
    """Give ``ds`` ground truth of at least ``min(k, n_base)`` columns, in place.

    Shipped ground truth with enough columns is kept; otherwise it is computed
    with :func:`ground_truth` (cached; ``refresh`` recomputes the cached file).
    Returns ``ds`` for convenience.
    """
    k = min(int(k), ds.base.shape[0])
    gt = ds.groundtruth
    if gt is not None and gt.shape[0] == ds.query.shape[0] and gt.shape[1] >= k:
        return ds
    ids, _ = ground_truth(ds.base, ds.query, k, cache_dir, refresh=refresh, metric=ds.metric)
    ds.groundtruth = ids
    by = {"l2": "squared L2", "ip": "inner product, largest first",
          "cosine": "cosine (inner product of the normalised vectors), largest first"}
    ds.info["groundtruth"] = f"computed: exact {by[ds.metric]}, top-{k}, ties by smaller id"
    return ds


#: the fewest queries :func:`check_groundtruth` checks, the multiply-adds it may spend to
#: check more (about a second of BLAS), and the seed that picks them
CHECK_QUERIES = 50
CHECK_FLOPS = 10 ** 10
CHECK_SEED = 0


def check_queries(n_query: int, n_base: int, dim: int) -> int:
    """How many queries :func:`check_groundtruth` checks: all when brute force on all of them
    costs at most :data:`CHECK_FLOPS`, else as many as that buys, at least :data:`CHECK_QUERIES`."""
    affordable = CHECK_FLOPS // max(1, n_base * dim)
    return int(min(n_query, max(CHECK_QUERIES, affordable)))


def check_groundtruth(base, query, ids, n_queries: int | None = None, seed: int = CHECK_SEED,
                      rtol: float = 1e-4, what: str = "ground truth",
                      metric: str = "l2") -> None:
    """Check ground-truth ids against brute force on a seeded sample of queries.

    For ``n_queries`` queries (default :func:`check_queries`) drawn with
    ``seed`` (all of them when there are fewer), over the whole top-k of each:
    the listed ids' exact squared distances (under ``ip`` and ``cosine``: inner
    products) must not increase (decrease) along the row, and must equal the exact
    top-k values of that query over the whole base (so ids may differ only among ties).
    ``rtol`` (relative to the row's largest distance) absorbs the float32 rounding of files
    written by other tools.

    Args:
        base: (n_base, d) vectors; query: (nq, d); ids: (nq, k) integers.

    Raises:
        InputError: naming ``what``, the query, the rank and the two distances
            (e.g. a shuffled, misaligned or truncated file).
    """
    ids = np.asarray(ids)
    nq, k = ids.shape
    if ids.size and (ids.min() < 0 or ids.max() >= base.shape[0]):
        raise InputError(f"{what}: ids must be in [0, {base.shape[0]}), found "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    if n_queries is None:
        n_queries = check_queries(nq, base.shape[0], base.shape[1])
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(nq, size=min(n_queries, nq), replace=False))
    sample = np.ascontiguousarray(query[rows])
    metric = kernel_metric(metric)
    listed = _exact64(base, sample, np.ascontiguousarray(ids[rows], dtype=np.int64), metric)
    _, exact = _exact_topk(base, sample, k, metric=metric)
    value = "squared distance" if metric == "l2" else "inner product"
    for row, got, want in zip(rows, listed, exact):
        tol = rtol * max(float(np.abs(want).max()), float(np.abs(got).max()), 1e-30)
        falls = np.flatnonzero(np.diff(got) < -tol)
        if falls.size:
            at = int(falls[0]) + 1
            raise InputError(f"{what}: query {int(row)} is not sorted by {value} (rank {at} is "
                             f"nearer than rank {at - 1}): it does not match these base and "
                             f"query vectors")
        off = np.flatnonzero(np.abs(got - want) > tol)
        if off.size:
            at = int(off[0])
            shown = metric_values(np.array([got[at], want[at]]), metric)
            raise InputError(f"{what}: query {int(row)} lists at rank {at} a neighbour at "
                             f"{value} {shown[0]:.6g}, but the exact rank-{at} {value} "
                             f"is {shown[1]:.6g}: it does not match these base and query "
                             f"vectors")
