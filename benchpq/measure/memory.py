"""Peak resident memory of this process, overall and per phase (Linux).

Per-phase peaks use the kernel's resettable high-water mark: writing "5" to
/proc/self/clear_refs resets VmHWM (Linux >= 4.0). Where that is not allowed
the phase peak falls back to the process peak so far, which is an upper bound.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def current_rss_bytes() -> int:
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else peak_rss_bytes()


def peak_rss_bytes() -> int:
    """High-water mark of resident memory since start (or since the last reset)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


def reset_peak() -> bool:
    """Reset the high-water mark to the current RSS; False if the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_MALLOC_TRIM = _malloc_trim()


def return_free_heap() -> None:
    """Give the C heap's free pages back to the kernel (glibc's ``malloc_trim``), so that
    a phase's memory does not start with what earlier phases freed but the allocator kept."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class PeakTracker:
    """Records the peak RSS of named phases and of the whole process.

    A phase's delta (peak minus the RSS at its start) is the memory the phase
    itself needed: temporaries and outputs, not the data already loaded.
    """

    def __init__(self):
        self.overall = peak_rss_bytes()
        self.phases: dict[str, int] = {}

    def start(self) -> None:
        self.overall = max(self.overall, peak_rss_bytes())
        return_free_heap()
        reset_peak()
        self._start_rss = current_rss_bytes()

    def stop(self, phase: str) -> tuple[int, int]:
        """(peak RSS during the phase, that peak minus the RSS when it started)."""
        peak = peak_rss_bytes()
        self.phases[phase] = peak
        self.overall = max(self.overall, peak)
        return peak, max(peak - self._start_rss, 0)
