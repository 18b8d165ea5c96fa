"""Tasks: what is measured in one run, given a plugin and a dataset.

``search``: fit on learn, add base, search queries; recall@R, k-recall@k, qps,
mse (when the plugin can decode), times per phase, memory.
``cluster``: fit_predict on base; clustering error, empty clusters, NMI/ARI
against labels when the dataset has them.

Each phase is timed on its own (``<phase>_s``) and its peak RSS recorded
(``<phase>_peak_rss_bytes``, and ``<phase>_rss_delta_bytes``: that peak minus
the RSS when the phase began); metric names follow DESIGN.md.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from . import metrics
from .api import Algorithm, Clusterer, Quantizer, Searcher, capabilities
from .checks import InputError, check_k, check_positive_int
from .datasets import Dataset, ensure_groundtruth, exact_distances
from .memory import PeakTracker, release_pages

CHUNK_ROWS = 65536


class Phases:
    """Times and peak memory of the phases of one run."""

    def __init__(self):
        self.metrics: dict[str, float] = {}
        self.memory = PeakTracker()

    @contextmanager
    def __call__(self, name: str):
        self.memory.start()
        t0 = time.perf_counter()
        yield
        self.metrics[f"{name}_s"] = time.perf_counter() - t0
        peak, delta = self.memory.stop(name)
        self.metrics[f"{name}_peak_rss_bytes"] = peak
        self.metrics[f"{name}_rss_delta_bytes"] = delta


def _require(plugin: Algorithm, cls: type, task: str) -> None:
    if not isinstance(plugin, cls):
        raise InputError(f"algorithm {plugin.name!r} ({', '.join(capabilities(plugin)) or 'no'} "
                         f"capabilities) cannot run task {task!r}: it needs a "
                         f"{cls.__name__.lower()}")


def _check_search_output(distances, ids, nq: int, k: int, name: str):
    distances, ids = np.asarray(distances), np.asarray(ids)
    if ids.shape != (nq, k) or distances.shape != (nq, k):
        raise InputError(f"algorithm {name!r} returned ids {ids.shape} and distances "
                         f"{distances.shape} from search, expected ({nq}, {k})")
    if ids.dtype.kind not in "iu":
        raise InputError(f"algorithm {name!r} returned ids of dtype {ids.dtype}")
    return distances, ids.astype(np.int64, copy=False)


def reconstruction_mse(plugin: Quantizer, x: np.ndarray, phases: Phases) -> float:
    """Encode ``x`` (timed as encode_s), decode chunkwise, return the mse."""
    with phases("encode"):
        codes = plugin.encode(x)
    total = 0.0
    for start in range(0, x.shape[0], CHUNK_ROWS):
        block = np.asarray(x[start:start + CHUNK_ROWS])
        x_hat = np.asarray(plugin.decode(codes[start:start + CHUNK_ROWS]))
        total += metrics.mse(block, x_hat) * block.shape[0]
    return total / x.shape[0]


def run_search(plugin: Algorithm, ds: Dataset, task: dict, threads: int) -> dict:
    """The search task. ``task`` keys: k, recall_at (list), k_recall (list), mse (bool)."""
    _require(plugin, Searcher, "search")
    k = check_k(task.get("k", 100), ds.base.shape[0])
    recall_at = [int(r) for r in task.get("recall_at", [1, 10, 100]) if int(r) <= k]
    k_recalls = [int(r) for r in task.get("k_recall", [10]) if int(r) <= k]
    ensure_groundtruth(ds, max(k_recalls, default=1))

    phases = Phases()
    plugin.set_threads(threads)
    with phases("train"):
        plugin.fit(ds.learn)
    with phases("add"):
        plugin.add(ds.base)
    with phases("search"):
        distances, ids = plugin.search(ds.query, k)
    distances, ids = _check_search_output(distances, ids, ds.query.shape[0], k, plugin.name)

    out = dict(phases.metrics)
    nq = ds.query.shape[0]
    out["qps"] = nq / max(out["search_s"], 1e-12)
    for R in recall_at:
        out[f"recall@{R}"] = metrics.recall_at(ids, ds.groundtruth, R)
    if k_recalls:
        kmax = max(k_recalls)
        returned = exact_distances(ds.base, ds.query, ids[:, :kmax])
        true = exact_distances(ds.base, ds.query, ds.groundtruth[:, :kmax])
        for kk in k_recalls:
            out[f"{kk}-recall@{kk}"] = metrics.k_recall_at_k(ids, returned, true, kk)
    if isinstance(plugin, Quantizer) and task.get("mse", True):
        out["mse"] = reconstruction_mse(plugin, ds.base, phases)
        out.update({k: v for k, v in phases.metrics.items() if k.startswith("encode")})
    out.update(code_bits=int(plugin.code_bits), codes_bytes=int(plugin.codes_bytes),
               model_bytes=int(plugin.model_bytes), n_base=int(ds.base.shape[0]),
               n_query=int(nq), n_learn=int(ds.learn.shape[0]), dim=int(ds.dim))
    out["peak_rss_bytes"] = phases.memory.overall
    out.update(plugin.extra_metrics())
    return out


def run_cluster(plugin: Algorithm, ds: Dataset, task: dict, threads: int) -> dict:
    """The clustering task. ``task`` keys: n_clusters, data ('base' or 'learn')."""
    _require(plugin, Clusterer, "cluster")
    x = {"base": ds.base, "learn": ds.learn}.get(task.get("data", "base"))
    if x is None:
        raise InputError(f"task.data must be 'base' or 'learn', got {task.get('data')!r}")
    n_clusters = check_positive_int(task.get("n_clusters", 100), "n_clusters")
    if n_clusters > x.shape[0]:
        raise InputError(f"n_clusters={n_clusters} is larger than the data ({x.shape[0]} vectors)")

    phases = Phases()
    plugin.set_threads(threads)
    release_pages(x)  # validation read a memory-mapped set in: not the clusterer's memory
    with phases("cluster"):
        labels = plugin.fit_predict(x, n_clusters)
    labels = metrics.check_labels(np.asarray(labels), x.shape[0], n_clusters)

    out = dict(phases.metrics)
    out["error"] = metrics.clustering_error(x, labels, n_clusters)
    out["empty_clusters"] = metrics.empty_clusters(labels, n_clusters)
    truth = ds.labels if x is ds.base else None
    if truth is not None:
        out["nmi"] = metrics.nmi(truth, labels)
        out["ari"] = metrics.ari(truth, labels)
    out.update(n_clusters=n_clusters, n=int(x.shape[0]), dim=int(ds.dim),
               code_bits=int(plugin.code_bits), codes_bytes=int(plugin.codes_bytes),
               model_bytes=int(plugin.model_bytes), peak_rss_bytes=phases.memory.overall)
    out.update(plugin.extra_metrics())
    return out


TASKS = {"search": run_search, "cluster": run_cluster}


def run_task(plugin: Algorithm, ds: Dataset, task: dict, threads: int) -> dict:
    name = task.get("name")
    if name not in TASKS:
        raise InputError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name](plugin, ds, task, threads)
