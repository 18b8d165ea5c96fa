"""task.search_threads: one build searched at several thread counts, each search a record
whose ``threads`` is its count and ``build_threads`` the build's; reports keep the counts
apart; bad counts are named before anything is trained."""
from pathlib import Path

import pytest

from benchpq.checks import InputError
from benchpq.report.load import load_records
from benchpq.report.tables import pivot
from benchpq.sweep import runner

from compose import compose_config

pytestmark = pytest.mark.usefixtures("test_plugins")


def config_for(tmp_path, *overrides, search=None):
    config = compose_config(["dataset=synthetic", "++dataset.n_base=2000", "++dataset.n_query=30",
                             "algorithm=faiss_pq", f"results_dir={tmp_path / 'results'}",
                             f"cache_dir={tmp_path / 'cache'}", *overrides])
    config["algorithm"] = {"name": "test_counting", "log": str(tmp_path / "fits.log"),
                           **({"search": search} if search else {})}
    config["plugins"] = ["counting_plugins"]
    return config


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_one_build_is_searched_at_each_count_with_a_record_each(tmp_path):
    config = config_for(tmp_path, "threads=2", "task.search_threads=[1,2]",
                        "task.search_repeats=2", search={"budget": [500, 0]})
    records = runner.execute(config)
    assert [r["status"] for r in records] == ["ok"] * 4, [r["message"] for r in records]
    assert lines(tmp_path / "fits.log") == ["fit"]  # one build
    assert [(r["search"]["budget"], r["threads"]) for r in records] == \
        [(500, 1), (500, 2), (0, 1), (0, 2)]
    assert {r["build_threads"] for r in records} == {2}
    assert len({r["run_id"] for r in records}) == 4 and len({r["build_id"] for r in records}) == 1
    # every pass of a record's search ran at its count: 2 settings x 2 counts x 2 passes
    assert lines(tmp_path / "fits.log.searches") == ["1", "1", "2", "2"] * 2
    # the same results at every count, the build's metrics shared
    for budget in (500, 0):
        one, two = (r["metrics"] for r in records if r["search"]["budget"] == budget)
        assert one["recall@10"] == two["recall@10"] and one["train_s"] == two["train_s"]
    # the build is the one a run of 2 threads without the option makes and caches
    plain = runner.execute(config_for(tmp_path, "threads=2", search={"budget": [500]}))
    assert plain[0]["build_cached"] and plain[0]["build_id"] == records[0]["build_id"]
    assert plain[0]["threads"] == plain[0]["build_threads"] == 2
    # the sweep again skips all four
    assert all(r.get("skipped") for r in runner.execute(config))


def test_reports_keep_thread_counts_and_builds_apart(tmp_path):
    runner.execute(config_for(tmp_path, "threads=2", "task.search_threads=[1,2]",
                              "task.search_repeats=1"))
    runner.execute(config_for(tmp_path, "threads=1", "task.search_repeats=1"))
    df = load_records(tmp_path / "results")
    assert sorted(zip(df["threads"], df["build_threads"])) == [(1, 1), (1, 2), (2, 2)]
    table = pivot(df, rows=["algorithm", "threads", "build_threads"], values=["qps"])
    assert len(table.mean) == 3  # three conditions, none averaged with another


@pytest.mark.parametrize("counts, message", [
    ("[3]", "3 is above threads=2"),
    ("[3,x]", "task.search_threads"),  # every count checked before the bound
    ("[0]", "task.search_threads"),
    ("[]", "expected a list of thread counts"),
    ("2", "expected a list of thread counts"),
])
def test_bad_counts_are_named_before_anything_is_trained(tmp_path, counts, message):
    config = config_for(tmp_path, "threads=2", f"task.search_threads={counts}")
    with pytest.raises(InputError, match=message):
        runner.execute(config)
    assert lines(tmp_path / "fits.log") == []
