"""Progress lines of long loops: rate and time left, silence for short loops."""
import logging

from benchpq.progress import Progress, format_duration


def test_a_long_loop_says_how_far_it_is_and_when_it_is_done(caplog, monkeypatch):
    clock = iter(range(0, 1000, 20))  # every call 20 s later
    monkeypatch.setattr("benchpq.progress.time.monotonic", lambda: next(clock))
    progress = Progress("ground truth", total=1000, unit="rows", every_s=10)
    with caplog.at_level(logging.INFO, logger="benchpq"):
        for _ in range(4):
            progress.advance(250)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "ground truth: 250 of 1,000 rows (25%), 12.5 rows/s, ~1 min left"
    assert lines[-1] == "ground truth: 1,000 of 1,000 rows (100%), 12.5 rows/s"
    assert len(lines) == 4


def test_a_short_loop_is_silent(caplog):
    progress = Progress("ground truth", total=100, every_s=60)
    with caplog.at_level(logging.INFO, logger="benchpq"):
        for _ in range(10):
            progress.advance(10)
    assert caplog.records == []


def test_a_resumed_loop_counts_its_rate_from_where_it_resumed(monkeypatch):
    clock = iter([0, 10])
    monkeypatch.setattr("benchpq.progress.time.monotonic", lambda: next(clock))
    progress = Progress("x", total=1000, done=500)
    progress.done += 100
    assert progress.line() == "x: 600 of 1,000 rows (60%), 10 rows/s, ~40 s left"


def test_durations_are_rough():
    assert [format_duration(s) for s in (0.2, 42, 250, 9000)] == ["1 s", "42 s", "4 min",
                                                                   "2.5 h"]
