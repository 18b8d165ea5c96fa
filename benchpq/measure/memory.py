"""Peak resident memory of this process, overall and per phase (Linux).

Per-phase peaks use the kernel's resettable high-water mark: writing "5" to
/proc/self/clear_refs resets VmHWM (Linux >= 4.0). Where that is not allowed
the phase peak falls back to the process peak so far, which is an upper bound.
"""
from __future__ import annotations

import mmap
import resource
from pathlib import Path

import numpy as np

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
        reset_peak()
        self._start_rss = current_rss_bytes()

    def stop(self, phase: str) -> tuple[int, int]:
        """(peak RSS during the phase, that peak minus the RSS when it started)."""
        peak = peak_rss_bytes()
        self.phases[phase] = peak
        self.overall = max(self.overall, peak)
        return peak, max(peak - self._start_rss, 0)


def release_pages(a: np.ndarray) -> bool:
    """Drop the resident pages of a read-only memory-mapped array from this process (Linux).

    ``madvise(MADV_DONTNEED)`` on the whole pages inside ``a``'s bytes: the
    data stay in the page cache (the next read maps them back without disk
    I/O), but no longer count in the process's resident set. Arrays that are
    not views of a read-only ``np.memmap`` (``np.load(..., mmap_mode="r")``)
    are left alone. Returns whether pages were released.
    """
    obj, mm = a, None
    while obj is not None:  # a view's .base chain leads to the np.memmap
        if isinstance(obj, np.memmap):
            if obj.mode not in ("r", "readonly"):
                return False
            mm = getattr(obj, "_mmap", None)
            break
        obj = getattr(obj, "base", None)
    if not isinstance(mm, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return False
    try:
        start = a.ctypes.data - np.frombuffer(mm, dtype=np.uint8).ctypes.data
        page = mmap.PAGESIZE
        first, last = -(-start // page) * page, (start + a.nbytes) // page * page
        if last > first:
            mm.madvise(mmap.MADV_DONTNEED, first, last - first)
        return True
    except (ValueError, OSError, BufferError):
        return False
