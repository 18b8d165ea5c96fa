"""One thread setting for OpenMP (faiss, our native code) and BLAS."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

from ..checks import InputError, check_positive_int
from ..store.provenance import THREAD_VARIABLES


@contextmanager
def thread_environment(threads: int):
    """Set the thread variables while a child process is started, then restore them.

    OpenMP and BLAS read them once, when they load, so they must be in the
    environment the child process starts with.
    """
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: str(threads) for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def apply_in_process(threads: int) -> None:
    """Also set the thread count of libraries already loaded in this process."""
    faiss = sys.modules.get("faiss")
    if faiss is not None:
        faiss.omp_set_num_threads(threads)


def serial_blas():
    """Context: BLAS on one thread, for the small D x D algebra between our OpenMP loops.

    Between OpenMP regions our threads spin for a while; a multi-threaded BLAS
    called then (a 64 x 64 SVD) competes with them for the cores and was
    measured 50 times slower than on one thread.
    """
    return threadpool_limits(1, user_api="blas")


def search_thread_counts(task: dict, threads: int) -> list[int] | None:
    """``task.search_threads``: the thread counts one build is searched at, each search a
    record of its own (thread scaling), or None (the default: search at ``threads``).

    Each count is at most ``threads``: the run's process starts with ``threads`` threads
    for OpenMP and BLAS, and builds its model with them. Repeated counts are dropped.
    """
    counts = task.get("search_threads")
    if counts is None:
        return None
    if isinstance(counts, (str, bytes)) or not isinstance(counts, (list, tuple)) or not counts:
        raise InputError(f"task.search_threads: expected a list of thread counts, e.g. [1, 2], "
                         f"or null, got {counts!r}")
    checked = [check_positive_int(count, "task.search_threads") for count in counts]
    if max(checked) > threads:
        raise InputError(f"task.search_threads: {max(checked)} is above threads={threads}: the "
                         f"run starts OpenMP and BLAS with `threads` threads and builds with "
                         f"them; set threads={max(checked)}")
    return list(dict.fromkeys(checked))


@contextmanager
def searching_with(plugin, threads: int, then: int):
    """Context: ``plugin`` (and BLAS, and faiss) on ``threads`` threads while it searches,
    back on ``then`` threads after."""
    plugin.set_threads(threads)
    apply_in_process(threads)
    try:
        with threadpool_limits(threads, user_api="blas"):
            yield
    finally:
        plugin.set_threads(then)
        apply_in_process(then)
