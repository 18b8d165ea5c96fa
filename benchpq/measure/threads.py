"""One thread setting for OpenMP (faiss, our native code) and BLAS."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

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
