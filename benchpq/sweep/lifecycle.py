"""Processes die with the sweep: no run outlives the process that started it.

* A run's child process (:mod:`benchpq.sweep.child`) asks the kernel to kill it when
  its parent dies (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``) and also watches
  its parent id from a thread, so that a killed ``benchpq`` (SIGKILL included)
  never leaves a run computing for nobody.
* A launcher's worker process (joblib/loky, Ray) that executes runs watches its
  parent the same way and, when the parent is gone (the sweep was killed, or
  stopped by a SIGTERM that only reached it), kills the run it started, records
  it as ``interrupted`` and exits: workers do not sit idle after the sweep ended,
  and no run in flight goes unrecorded.
* SIGINT and SIGTERM of the process that waits for a run are turned into
  :class:`Interrupted`, so that the runner can kill the run, record it as
  ``interrupted`` and remove its job folder before exiting.
"""
from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1
#: set by the ``benchpq`` command in its own process; workers inherit it
MAIN_PID_ENV = "BENCHPQ_MAIN_PID"
POLL_S = 0.5
#: how long an orphaned worker gives its runner to record the run it kills
ORPHAN_GRACE_S = 5.0

#: process groups of the runs this process is waiting for (killed if it is orphaned)
_running_groups: set[int] = set()
_watching = False
_orphaned = False


class Interrupted(BaseException):
    """The process waiting for a run received SIGINT or SIGTERM."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _set_parent_death_signal(signum: int) -> bool:
    """Linux: deliver ``signum`` to this process when its parent dies; False elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, on_orphaned) -> None:
    def loop():
        while os.getppid() == parent:
            time.sleep(POLL_S)
        on_orphaned()
    threading.Thread(target=loop, name="benchpq-parent-watch", daemon=True).start()


def die_with_parent() -> None:
    """In a run's child process: be killed as soon as the parent is gone."""
    parent = os.getppid()
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent or parent == 1:  # the parent died before prctl took effect
        os._exit(1)
    _watch(parent, lambda: os.killpg(os.getpgrp(), signal.SIGKILL))


def watch_parent_if_worker() -> None:
    """In a launcher's worker process: when the parent dies, kill our runs and exit.

    A worker is a process other than the ``benchpq`` command's own
    (``$BENCHPQ_MAIN_PID``). Does nothing in the main process (a sweep started
    from a shell that goes away must go on), and starts once per process.
    """
    global _watching
    main = os.environ.get(MAIN_PID_ENV)
    if _watching or not main or int(main) == os.getpid():
        return
    _watching = True

    def orphaned():
        global _orphaned
        _orphaned = True
        if _running_groups:
            # the main thread waits for the run inside signals_interrupt: SIGTERM makes the
            # runner kill it and record it as interrupted, as the sweep's own SIGTERM would
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + ORPHAN_GRACE_S
            while time.monotonic() < deadline:
                time.sleep(0.1)
        for group in list(_running_groups):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os._exit(1)
    _watch(os.getppid(), orphaned)


def exit_if_orphaned(code: int) -> None:
    """In a worker whose parent is gone: exit now (after the runner recorded its run).

    Unwinding into the launcher's code instead would leave the worker waiting at
    interpreter exit for threads that talk to the dead parent.
    """
    if _orphaned:
        os._exit(code)


def track(group: int) -> None:
    _running_groups.add(group)


def untrack(group: int) -> None:
    _running_groups.discard(group)


@contextmanager
def signals_interrupt():
    """SIGINT and SIGTERM raise :class:`Interrupted` in this block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)
    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
