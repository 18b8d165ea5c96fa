"""Exact ground truth at scale: computed in blocks, killed half way, resumed, checked.

Takes the SIFT-like synthetic set (``synthetic_sift``, 128-d integers 0..255 stored as
bytes like SIFT1B's; generated once into the cache and memory-mapped) with ``n_base`` base
vectors and ``n_query`` queries; computes their exact top-100 in a child process; kills
that process (SIGKILL) once its checkpoint covers half of the base; asks again in this
process, which resumes from the checkpoint; then checks ``n_check`` queries against an
independent brute force (float64 distances over the whole base, sorted by distance then
id). Prints the times.

    python3 docs/bench/groundtruth_resume.py [n_base] [n_query] [n_check] [checkpoint s]

Defaults: 10,000,000 base vectors, 10,000 queries, 100 checked, a checkpoint every 60 s.
The cache folder is ``$BENCHPQ_CACHE`` (the set takes 1.3 GB there at the default size).
"""
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np

from benchpq.datasets import groundtruth as gtmod
from benchpq.datasets import load_dataset, resolve_cache_dir

DATASET = "synthetic_sift"
K = 100


def dataset(n_base: int, n_query: int):
    return load_dataset(DATASET, n_base=n_base, n_query=n_query, n_learn=1000,
                        groundtruth_k=None, dtype="uint8")


def brute_force(base: np.ndarray, query: np.ndarray, k: int, block: int = 1 << 18):
    """Top-k of each query by float64 squared distance, ties by smaller id."""
    q = query.astype(np.float64)
    qn = (q * q).sum(1)
    best_d = np.full((len(q), k), np.inf)
    best_i = np.zeros((len(q), k), dtype=np.int64)
    for s in range(0, base.shape[0], block):
        x = np.asarray(base[s:s + block], dtype=np.float64)
        d = qn[:, None] - 2 * q @ x.T + (x * x).sum(1)
        ids = np.broadcast_to(np.arange(s, s + x.shape[0]), d.shape)
        d, ids = np.concatenate([best_d, d], 1), np.concatenate([best_i, ids], 1)
        order = np.lexsort((ids, d), axis=1)[:, :k]
        best_d, best_i = np.take_along_axis(d, order, 1), np.take_along_axis(ids, order, 1)
    return best_i, best_d


def checkpoint_start(folder) -> int:
    """Base rows the furthest readable checkpoint slot covers (0 if none)."""
    starts = [0]
    for slot in folder.glob("*.partial-?.npz"):
        try:
            with np.load(slot) as f:
                starts.append(int(f["start"]))
        except (OSError, ValueError, KeyError):
            pass  # being replaced
    return max(starts)


def main(n_base: int = 10_000_000, n_query: int = 10_000, n_check: int = 100,
         checkpoint_s: int = 60) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    ds = dataset(n_base, n_query)
    print(f"data: {ds.base.shape} base, {ds.query.shape} queries "
          f"({time.perf_counter() - t0:.0f} s)")
    folder = resolve_cache_dir() / "groundtruth"
    here = os.path.dirname(os.path.abspath(__file__))
    child_code = "\n".join([
        f"import sys; sys.path.insert(0, {here!r})",
        "import logging",
        "logging.basicConfig(level=logging.INFO, format='%(asctime)s child %(message)s')",
        "from groundtruth_resume import dataset",
        "from benchpq.datasets import groundtruth",
        f"groundtruth.CHECKPOINT_S = {checkpoint_s}",
        f"ds = dataset({n_base}, {n_query})",
        f"groundtruth.ground_truth(ds.base, ds.query, {K})"])
    child = subprocess.Popen([sys.executable, "-c", child_code])
    t0 = time.perf_counter()
    while checkpoint_start(folder) < n_base // 2:
        if child.poll() is not None:
            raise SystemExit("the child finished before half way: nothing to resume")
        time.sleep(1)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    first = time.perf_counter() - t0
    print(f"killed after {first:.0f} s at {checkpoint_start(folder):,} of {n_base:,} base rows")
    t0 = time.perf_counter()
    ids, dist = gtmod.ground_truth(ds.base, ds.query, K)
    print(f"resumed and finished in {time.perf_counter() - t0:.0f} s")
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n_query, n_check, replace=False))
    t0 = time.perf_counter()
    want_ids, want_dist = brute_force(ds.base, np.asarray(ds.query[sample]), K)
    same_ids = (ids[sample] == want_ids).all(1)
    same_dist = np.isclose(dist[sample], want_dist, rtol=1e-6, atol=0).all(1)
    print(f"brute force of {n_check} queries: {time.perf_counter() - t0:.0f} s; "
          f"ids equal on {same_ids.sum()} of {n_check}, distances on {same_dist.sum()}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
