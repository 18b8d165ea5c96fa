"""Progress of long loops: a line now and then with the rate and the time left.

    progress = Progress("ground truth", total=n_rows, unit="rows")
    for start in range(0, n_rows, block):
        ...
        progress.advance(rows_done_in_this_block)

logs ``ground truth: 3,200,000 of 10,000,000 rows (32%), 1.1e+06 rows/s, ~6 s left`` every
``every_s`` seconds, and once at the end of a loop that logged before (a short loop is
silent).
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger("benchpq")


def format_duration(seconds: float) -> str:
    """A rough duration: ``40 s``, ``4 min``, ``2.5 h``."""
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Counts work done towards ``total`` and logs rate and time left every ``every_s``.

    ``done`` may start above 0 (a computation resumed from a checkpoint); the rate counts
    only the work done since this object was made.
    """

    def __init__(self, what: str, total: int, unit: str = "rows", done: int = 0,
                 every_s: float = 10.0):
        self.what, self.total, self.unit = what, int(total), unit
        self.done = self._start_done = int(done)
        self.every_s = every_s
        self._start = self._last = time.monotonic()
        self._logged = False

    def advance(self, amount: int) -> None:
        self.done += int(amount)
        now = time.monotonic()
        finished = self.done >= self.total
        # a loop done within every_s says nothing; a longer one says when it is done
        if now - self._last >= self.every_s or (finished and self._logged):
            self._last, self._logged = now, True
            log.info(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (time.monotonic() if now is None else now) - self._start
        rate = (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0
        share = 100.0 * self.done / self.total if self.total else 100.0
        text = f"{self.what}: {self.done:,} of {self.total:,} {self.unit} ({share:.0f}%)"
        if rate > 0:
            text += f", {rate:.3g} {self.unit}/s"
            if self.done < self.total:
                text += f", ~{format_duration((self.total - self.done) / rate)} left"
        return text
