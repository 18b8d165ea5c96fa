"""Tasks: what is measured in one run, given a plugin and a dataset.

``search``: fit on learn, add base, search queries; recall@R, k-recall@k, qps,
mse (when the plugin can decode), times per phase, memory.
``cluster``: fit_predict on base; clustering error, empty clusters, NMI/ARI
against labels when the dataset has them.

Each phase is timed on its own (``<phase>_s``) and its peak RSS recorded
(``<phase>_peak_rss_bytes``, and ``<phase>_rss_delta_bytes``: that peak minus
the RSS when the phase began). Every metric name comes from :mod:`benchpq.metric_table`
(its name builders for the parametrised ones); a plugin's ``extra_metrics()`` keys must be
declared there or in the plugin's ``metric_specs``, and the result carries those
declarations (``"metric_specs"``) for the record.
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager

import numpy as np

from .. import metric_table
from ..api import Algorithm, Clusterer, Quantizer, Searcher, capabilities
from ..checks import InputError, check_k, check_labels, check_positive_int
from ..datasets import Dataset, ensure_groundtruth, exact_distances, resolve_cache_dir
from ..datasets.metric import kernel_metric
from ..metric_table import (
    k_recall_name,
    phase_delta_name,
    phase_peak_name,
    phase_time_name,
    phase_time_stat_name,
    recall_name,
)
from ..store.mapped import codes_in_files, release_pages
from ..store.records import json_safe
from . import codec, diagnostics, latency, metrics, rerank, search_grid, uncertainty
from .memory import PeakTracker
from .search_grid import check_search_options
from .threads import search_thread_counts, searching_with

CHUNK_ROWS = 65536
#: MiB of float32 base rows converted at a time when the task does not say (task.block_mb)
DEFAULT_BLOCK_MB = 256
#: MiB of codes a plugin keeps in RAM when the task does not say (task.codes_in_ram_mb);
#: larger code buffers live in memory-mapped files under the cache's ``codes/`` folder
DEFAULT_CODES_IN_RAM_MB = 1024

log = logging.getLogger("benchpq")


class Phases:
    """Times and peak memory of the phases of one run.

    ``with phases("encode") as clock:`` times and tracks a phase; work inside
    ``with clock.untimed():`` counts in the phase's memory but not in its time (the
    checks a task makes on a phase's output, like decoding for the mse).
    """

    def __init__(self):
        self.metrics: dict[str, float] = {}
        self.memory = PeakTracker()

    @contextmanager
    def __call__(self, name: str):
        self.memory.start()
        clock = _PhaseClock()
        yield clock
        self.metrics[phase_time_name(name)] = clock.elapsed()
        peak, delta = self.memory.stop(name)
        self.metrics[phase_peak_name(name)] = peak
        self.metrics[phase_delta_name(name)] = delta

    def of(self, name: str) -> dict:
        """The time and memory metrics of phase ``name`` measured so far."""
        return {key: self.metrics[key]
                for key in (phase_time_name(name), phase_peak_name(name), phase_delta_name(name))
                if key in self.metrics}


class _PhaseClock:
    """Wall time since its creation, minus the time spent in :meth:`untimed` blocks."""

    def __init__(self):
        self.t0, self.paused = time.perf_counter(), 0.0

    @contextmanager
    def untimed(self):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.paused += time.perf_counter() - t0

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0 - self.paused


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


#: blocks of the base hold a multiple of this many rows when they can: plugins that pack
#: codes in groups (fast-scan blocks of 32) then append each block without repacking
BLOCK_ALIGN = 1024


def block_rows(task: dict, dim: int) -> int:
    """Rows of a float32 block of the base within the task's ``block_mb`` budget (a
    multiple of :data:`BLOCK_ALIGN` unless the budget holds fewer rows)."""
    budget = check_positive_int(task.get("block_mb", DEFAULT_BLOCK_MB), "task.block_mb")
    rows = max(1, (budget << 20) // (4 * dim))
    return rows - rows % BLOCK_ALIGN if rows >= BLOCK_ALIGN else rows


def float_blocks(x: np.ndarray, rows: int):
    """(start, block) over ``x`` (n, d) in its stored type (a memory map, uint8...), each
    block a C-contiguous float32 copy of at most ``rows`` rows: no float copy of the
    whole of ``x`` is made (a caller drops its block before asking for the next, or two
    are resident while the next is made). The pages of a memory-mapped ``x`` are released from the
    process once their block is used (they stay in the page cache), so reading a base
    larger than RAM does not grow the run's resident set."""
    for start in range(0, x.shape[0], rows):
        source = x[start:start + rows]
        yield start, np.ascontiguousarray(source, dtype=np.float32)
        release_pages(source)


def encode_base(plugin: Quantizer, x: np.ndarray, phases: Phases, rows: int,
                diagnose: bool) -> dict:
    """Encode ``x`` block by block (the ``encode`` phase: its time counts the encoding
    only) and measure, untimed, the reconstruction mse of each block and (``diagnose``) the
    codebook diagnostics (:class:`benchpq.measure.diagnostics.QuantizerDiagnostics`).

    A block's codes are dropped once measured, so the phase holds one block of codes, not
    a second copy of the index's. Returns ``{"mse": ..., <diagnostics>...}``.
    """
    total = 0.0
    watch = diagnostics.QuantizerDiagnostics(plugin) \
        if diagnose and diagnostics.has_subspaces(plugin) else None
    with phases("encode") as clock:
        for _, block in float_blocks(x, rows):
            codes = np.asarray(plugin.encode(block))
            with clock.untimed():
                if codes.shape[0] != block.shape[0]:
                    raise InputError(f"algorithm {plugin.name!r} returned {codes.shape[0]} "
                                     f"codes for {block.shape[0]} vectors from encode")
                for start in range(0, block.shape[0], CHUNK_ROWS):
                    chunk = block[start:start + CHUNK_ROWS]
                    x_hat = np.asarray(plugin.decode(codes[start:start + CHUNK_ROWS]))
                    total += metrics.mse(chunk, x_hat) * chunk.shape[0]
                if watch is not None:
                    watch.update(block, codes)
                del block, codes  # before the next block is made
    return {"mse": total / x.shape[0], **(watch.result() if watch is not None else {})}


def run_search(plugin: Algorithm, ds: Dataset, task: dict, threads: int,
               settings: list[dict] | None = None, store=None) -> dict:
    """The search task: build the model once, then search at every setting.

    ``task`` keys: k, recall_at (list), k_recall (list), mse (bool),
    search_repeats (int, default 3), rerank (:mod:`benchpq.measure.rerank`), query_mode
    (``batch`` or ``single``: :mod:`benchpq.measure.latency`), search_threads (the same
    build searched at each of these thread counts, each point saying its ``threads``:
    :func:`benchpq.measure.threads.search_thread_counts`), block_mb (MiB of float32
    base rows per block, default 256) and codes_in_ram_mb (default 1024; see
    :func:`build_search_model`). ``settings`` are search-time parameter settings
    (:mod:`benchpq.measure.search_grid`; default one empty setting). ``store`` is an
    optional trained-model cache entry (:class:`BuildStore`).

    Returns ``{"build": metrics of the build, "build_cached": bool, "points":
    [one result per setting]}``; a point is ``{"search": setting, "status":
    "ok" | "error", "message": str, "metrics": {...}}``.
    """
    _require(plugin, Searcher, "search")
    settings = [{}] if settings is None else settings
    search_grid.check(plugin, settings)
    k = check_k(task.get("k", 100), ds.base.shape[0])
    repeats = check_positive_int(task.get("search_repeats", 3), "task.search_repeats")
    recall_at, k_recalls = check_search_options(task, k)
    factor = rerank.rerank_factor(task)
    mode = latency.query_mode(task)
    codec_columns = codec.groundtruth_columns(task.get("codec")) \
        if codec.enabled(plugin, task.get("codec")) else 1
    plugin.set_metric(kernel_metric(ds.metric))  # before anything is trained
    ensure_groundtruth(ds, max([*k_recalls, codec_columns]))

    counts = search_thread_counts(task, threads)
    plugin.set_threads(threads)
    plugin, build, cached = _built(plugin, ds, task, store)
    plugin.set_threads(threads)
    plugin.set_metric(kernel_metric(ds.metric))  # a model from the cache is set again
    points = []
    for setting in settings:
        if counts is None:
            points.append(_search_point(plugin, ds, setting, k, recall_at, k_recalls, repeats,
                                        build, factor, mode))
            continue
        for count in counts:
            with searching_with(plugin, count, then=threads):
                point = _search_point(plugin, ds, setting, k, recall_at, k_recalls, repeats,
                                      build, factor, mode)
            points.append({**point, "threads": count})
    return {"build": build, "build_cached": cached, "points": points}


def build_search_model(plugin: Algorithm, ds: Dataset, task: dict) -> dict:
    """Fit on learn, add base, and (quantizers, ``task.mse``) measure mse on base.

    The base is added and encoded in float32 blocks of at most ``task.block_mb`` MiB
    (default 256), converted from its stored type one block at a time, so a base kept
    as uint8 or memory-mapped is never copied whole as floats; plugins append what each
    ``add`` gives them (the contract of :meth:`benchpq.api.Searcher.add`). Code buffers of
    more than ``task.codes_in_ram_mb`` MiB (default 1024; 0: all) that plugins make while
    adding (:func:`benchpq.store.mapped.empty_rows`) live in memory-mapped files in the
    cache, not in RAM. The mse and diagnostics are measured block by block as the base is
    encoded (:func:`encode_base`); the codec metrics (``task.codec``) on sampled pairs
    once the base is added (:mod:`benchpq.measure.codec`).

    Returns the build's metrics: per-phase times and memory, mse, codec metrics, sizes.
    """
    phases = Phases()
    rows = block_rows(task, ds.dim)
    release_pages(ds.base)  # loading (ground truth, checks) read a memory-mapped base in
    with phases("train"):
        plugin.fit(ds.learn)
    in_ram = check_positive_int(task.get("codes_in_ram_mb", DEFAULT_CODES_IN_RAM_MB),
                                "task.codes_in_ram_mb", 0)
    with phases("add"), codes_in_files(resolve_cache_dir() / "codes", in_ram << 20):
        for _, block in float_blocks(ds.base, rows):
            plugin.add(block)
            del block  # before the next block is made: two would be resident at once
        plugin.finish_add()
    out = dict(phases.metrics)
    if isinstance(plugin, Quantizer) and task.get("mse", True):
        out.update(encode_base(plugin, ds.base, phases, rows, task.get("diagnostics", True)))
        out.update(phases.of("encode"))
    if codec.enabled(plugin, task.get("codec")):
        out.update(codec.codec_metrics(plugin, ds.base, ds.query, ds.groundtruth,
                                       task.get("codec")))
    out.update(code_bits=int(plugin.code_bits), codes_bytes=int(plugin.codes_bytes),
               model_bytes=int(plugin.model_bytes), n_base=int(ds.base.shape[0]),
               n_query=int(ds.query.shape[0]), n_learn=int(ds.learn.shape[0]),
               dim=int(ds.dim), build_peak_rss_bytes=phases.memory.overall)
    out.update(bytes_per_vector(out["codes_bytes"], out["model_bytes"], out["n_base"]))
    return out


def bytes_per_vector(codes_bytes: int, model_bytes: int, n: int) -> dict:
    """``bytes_per_vector``: what an index stores per base vector (codes, correction
    factors, norms, ids where it keeps them: ``codes_bytes / n``), and
    ``total_bytes_per_vector``: that plus the model amortised over the n vectors."""
    return {"bytes_per_vector": codes_bytes / n, "total_bytes_per_vector": (codes_bytes
                                                                            + model_bytes) / n}


class BuildStore:
    """One trained-model cache entry: ``cache`` (:class:`benchpq.store.model_cache.ModelCache`),
    its ``key``, and whether a cached build may be used (``reuse``: false when forced)."""

    def __init__(self, cache, key: str, reuse: bool = True):
        self.cache, self.key, self.reuse = cache, key, reuse


def _built(plugin, ds, task, store):
    """(plugin, build metrics, cached?): from the store when it has the build."""
    if store is None:
        return plugin, build_search_model(plugin, ds, task), False
    with store.cache.lock(store.key):
        t0 = time.perf_counter()
        hit = store.cache.load(store.key, type(plugin)) if store.reuse else None
        if hit is not None:
            cached, build = hit
            return cached, {**{k: v for k, v in build.items() if k != "stored_at"},
                            "model_load_s": time.perf_counter() - t0}, True
        build = build_search_model(plugin, ds, task)
        t0 = time.perf_counter()
        if store.cache.store(store.key, plugin, build, replace=not store.reuse):
            build["model_store_s"] = time.perf_counter() - t0
    return plugin, build, False


def _search_point(plugin, ds, setting, k, recall_at, k_recalls, repeats, build,
                  factor: int = 0, mode: str = "batch") -> dict:
    """Search the queries ``repeats`` times at one setting; recall from the first pass.
    With a re-ranking ``factor``, the plugin is asked for factor x k candidates, which are
    re-ranked by exact distances inside the timed search (:mod:`benchpq.measure.rerank`).
    In ``single`` mode each query is its own call (re-ranked in it) and the latencies
    are recorded: each query's median over the passes (:mod:`benchpq.measure.latency`)."""
    point = {"search": setting, "status": "ok", "message": "", "metrics": {}}
    out = point["metrics"]
    try:
        search_grid.apply(plugin, setting)
        phases, times, first, passes = Phases(), [], None, []
        nq = ds.query.shape[0]
        asked = min(k * factor, ds.base.shape[0]) if factor else k

        reranking = {"s": 0.0, "read": 0}  # this pass's re-ranking seconds, rows read

        def search(queries, n_results):
            distances, ids = plugin.search(queries, asked)
            if factor:
                with clock.untimed():
                    distances, ids = _check_search_output(distances, ids, len(queries), asked,
                                                          plugin.name)
                    reranking["read"] += int((ids >= 0).sum())
                start = time.perf_counter()
                distances, ids = rerank.reranked(ds.base, queries, ids, n_results, ds.metric)
                reranking["s"] += time.perf_counter() - start
            return distances, ids

        rerank_times = []
        for _ in range(repeats):
            reranking.update(s=0.0, read=0)
            with phases("search") as clock:
                if mode == "single":
                    distances, ids, seconds = latency.one_at_a_time(search, ds.query, k, clock)
                    passes.append(seconds)
                else:
                    distances, ids = search(ds.query, k)
            times.append(phases.metrics[phase_time_name("search")])
            rerank_times.append(reranking["s"])
            distances, ids = _check_search_output(distances, ids, nq, k, plugin.name)
            if first is None:
                first = ids
                out.update({key: v for key, v in phases.of("search").items()
                            if key != phase_time_name("search")})
            elif not np.array_equal(first, ids):
                raise InputError(f"algorithm {plugin.name!r} returned different ids on "
                                 f"repeated searches of the same queries: its search is not "
                                 f"deterministic, so recall cannot be attributed")
        out[phase_time_name("search")] = min(times)
        out[phase_time_stat_name("search", "median")] = float(np.median(times))
        out["search_repeats"] = repeats
        if passes:
            out.update(latency.latency_metrics(np.median(passes, axis=0)))
        if factor:
            out["rerank_factor"] = factor
            out["rerank_bytes_per_vector"] = int(ds.base.shape[1] * ds.base.dtype.itemsize)
            out["rerank_s"] = rerank_times[int(np.argmin(times))]  # of the fastest pass
            out["rerank_vectors_read"] = reranking["read"]
        out["qps"] = nq / max(min(times), 1e-12)
        out.update(_recalls(ds, first, recall_at, k_recalls))
        out["peak_rss_bytes"] = max(int(build.get("build_peak_rss_bytes") or 0),
                                    int(phases.memory.overall or 0))
        out.update(_plugin_metrics(plugin, {**build, **out}))
    except InputError as exc:
        point.update(status="error", message=str(exc))
    return point


def _recalls(ds, ids, recall_at, k_recalls) -> dict:
    """recall@R and k-recall@k, their 95% bootstrap intervals over queries, and the
    per-query values that paired comparisons need (:mod:`benchpq.measure.uncertainty`)."""
    out = {}
    for R in recall_at:
        out[recall_name(R)] = metrics.recall_at(ids, ds.groundtruth, R)
    k_hits = {}
    if k_recalls:
        kmax = max(k_recalls)
        returned = exact_distances(ds.base, ds.query, ids[:, :kmax], ds.metric)
        true = exact_distances(ds.base, ds.query, ds.groundtruth[:, :kmax], ds.metric)
        for kk in k_recalls:
            out[k_recall_name(kk)] = metrics.k_recall_at_k(ids, returned, true, kk)
            k_hits[kk] = metrics.k_recall_hits(ids, returned, true, kk)
    out.update(uncertainty.search_uncertainty(ids, ds.groundtruth, recall_at, k_hits))
    return out


def _plugin_metrics(plugin, measured: dict) -> dict:
    """The plugin's ``extra_metrics()``, refused when it would overwrite a measured metric,
    holds a value a JSON record cannot store, or has a key that is neither a core metric nor
    declared in the plugin's ``metric_specs`` (the measured metrics are kept)."""
    extra = dict(plugin.extra_metrics() or {})
    clash = sorted(set(extra) & set(measured))
    if clash:
        raise InputError(f"algorithm {plugin.name!r}: extra_metrics() may not overwrite the "
                         f"metrics measured by the task ({', '.join(clash)})")
    for key, value in extra.items():
        try:
            json.dumps(json_safe(value), allow_nan=False)
        except (TypeError, ValueError):
            raise InputError(f"algorithm {plugin.name!r}: extra_metrics() value of {key!r} is "
                             f"not a number, string, bool or list of them: "
                             f"{type(value).__name__} {value!r:.80}") from None
    declared = declared_metrics(plugin)
    undeclared = sorted(key for key in extra if not metric_table.known(key, declared))
    if undeclared:
        raise InputError(
            f"algorithm {plugin.name!r}: extra_metrics() returned undeclared metrics "
            f"({', '.join(map(repr, undeclared))}); declare each once on the plugin class: "
            f"metric_specs = declare(Metric(name, definition, unit=..., direction=..., "
            f"display=..., kind=..., scope=...), ...), from benchpq.metric_table "
            f"(docs/metrics.md lists the core metrics a plugin may return undeclared)")
    return extra


def declared_metrics(plugin: Algorithm) -> dict:
    """The plugin's metric declarations (:func:`benchpq.metric_table.plugin_metrics`) as
    JSON dicts {name: spec}; a malformed declaration is an InputError naming the plugin."""
    try:
        return {name: metric_table.spec(m)
                for name, m in metric_table.plugin_metrics(plugin).items()}
    except (TypeError, ValueError) as exc:
        raise InputError(f"algorithm {plugin.name!r}: metric_specs: {exc}") from None


def run_cluster(plugin: Algorithm, ds: Dataset, task: dict, threads: int,
                settings: list[dict] | None = None, store=None) -> dict:
    """The clustering task. ``task`` keys: n_clusters, data ('base' or 'learn').

    Returns the same shape as :func:`run_search`, with one point. Clusterers
    have no search settings, and their results are not cached.
    """
    _require(plugin, Clusterer, "cluster")
    if settings and any(settings):
        raise InputError(f"algorithm {plugin.name!r}: the cluster task has no search "
                         f"settings, got algorithm.search {settings}")
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
    labels = check_labels(np.asarray(labels), x.shape[0], n_clusters)

    out = dict(phases.metrics)
    out["error"] = metrics.clustering_error(x, labels, n_clusters)
    out.update(diagnostics.cluster_sizes(labels, n_clusters))
    truth = ds.labels if x is ds.base else None
    if truth is not None:
        out["nmi"] = metrics.nmi(truth, labels)
        out["ari"] = metrics.ari(truth, labels)
    out.update(n_clusters=n_clusters, n=int(x.shape[0]), dim=int(ds.dim),
               code_bits=int(plugin.code_bits), codes_bytes=int(plugin.codes_bytes),
               model_bytes=int(plugin.model_bytes), peak_rss_bytes=phases.memory.overall)
    point = {"search": {}, "status": "ok", "message": "", "metrics": out}
    try:
        out.update(_plugin_metrics(plugin, out))
    except InputError as exc:
        point.update(status="error", message=str(exc))
    return {"build": {}, "build_cached": False, "points": [point]}


TASKS = {"search": run_search, "cluster": run_cluster}


def run_task(plugin: Algorithm, ds: Dataset, task: dict, threads: int,
             settings: list[dict] | None = None, store=None) -> dict:
    """Run task ``task["name"]``; returns ``{"build", "build_cached", "points",
    "metric_specs"}``, the last the plugin's declared metrics as JSON dicts
    (:func:`declared_metrics`), which every record of the run carries."""
    name = task.get("name")
    if name not in TASKS:
        raise InputError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    specs = declared_metrics(plugin)  # a malformed declaration fails before any training
    result = TASKS[name](plugin, ds, task, threads, settings, store)
    result["metric_specs"] = specs
    return result
