"""Published figures beside measured ones: config shape, matching, tolerance flags."""
from pathlib import Path

import pytest

from benchpq.report import ReportError, load_records, summary_table
from benchpq.report.cli import main
from benchpq.report.references import (
    check_reference,
    reference_table,
    references_from_file,
    render_references,
    tolerance_of,
)
from benchpq.store.records import record_path, write_record

REPO = Path(__file__).resolve().parents[1]
REFERENCES = [
    {"metric": "mse", "value": 100.0, "tolerance": "2%", "where": {"algorithm": "a", "M": 8},
     "source": "paper A, table 1"},
    {"metric": "recall@10", "value": 0.9, "tolerance": 0.01, "where": {"algorithm": "a"},
     "source": "lib A 1.0, command x"},
    {"metric": "recall@1", "value": 0.5, "check": "at_least", "where": {"algorithm": "b"},
     "source": "test of lib B"},
    {"metric": "mse", "value": 1.0, "where": {"algorithm": "nobody"}, "source": "nowhere"},
]


def write_runs(sweep, references):
    for seed, (mse, recall10) in enumerate(((101.0, 0.93), (103.0, 0.95))):
        for alg, recall1 in (("a", 0.4), ("b", 0.49 + seed * 0.04)):
            rid = f"{alg}{seed}"
            write_record(record_path(sweep, rid), {
                "run_id": rid, "status": "ok", "message": "", "algorithm": alg,
                "dataset": "toy", "task": "search", "seed": seed, "threads": 1,
                "params": {"M": 8}, "metrics": {"mse": mse, "recall@10": recall10,
                                                "recall@1": recall1},
                "config": {"name": sweep.name, "report": {"references": references}}})


def test_references_travel_with_records_and_are_checked(tmp_path):
    write_runs(tmp_path / "s", REFERENCES)
    df = load_records(tmp_path / "s")
    assert len(df.attrs["references"]) == 4        # once each, though 4 records carry them
    frame = reference_table(df)

    def row(where, metric):
        return frame[(frame["where"] == where) & (frame.metric == metric)].iloc[0]
    mse = row("algorithm=a, M=8", "mse")
    assert mse.measured == 102.0 and mse.runs == 2 and mse.difference == pytest.approx(2.0)
    assert mse.tolerance == pytest.approx(2.0) and mse.status == "ok"
    recall = row("algorithm=a", "recall@10")
    assert recall.difference == pytest.approx(0.04) and recall.status == "OUT OF TOLERANCE"
    assert row("algorithm=b", "recall@1").status == "ok"     # 0.51 >= 0.5
    assert row("algorithm=nobody", "mse").status == "no run"
    text = render_references(reference_table(df))
    assert "**OUT OF TOLERANCE**" in text and "paper A, table 1" in text
    assert r"\textbf{OUT OF TOLERANCE}" in render_references(reference_table(df), "latex")
    assert "### Published figures beside ours" in summary_table(df)


def test_reference_errors_are_clear():
    with pytest.raises(ReportError, match="lacks source"):
        check_reference({"metric": "mse", "value": 1})
    with pytest.raises(ReportError, match="check 'about'"):
        check_reference({"metric": "mse", "value": 1, "source": "x", "check": "about"})
    with pytest.raises(ReportError, match="must be numbers"):
        check_reference({"metric": "mse", "value": 1, "source": "x", "tolerance": "lots"})
    assert tolerance_of({"value": 200, "tolerance": "5%"}) == 10.0


@pytest.mark.parametrize("name", ["pq_siftsmall", "paired_siftsmall", "lopq_oxford5k",
                                  "pq_sift1m", "own_vs_faiss"])
def test_shipped_experiments_carry_valid_references(name):
    refs = references_from_file(REPO / "conf" / "experiment" / f"{name}.yaml")
    assert len(refs) >= 3 and all(ref["source"] for ref, _ in refs)


def test_cli_applies_references_from_an_experiment_file(tmp_path, capsys):
    write_runs(tmp_path / "s", [])
    assert main([str(tmp_path / "s"), "--published"]) == 2
    assert "no published references" in capsys.readouterr().err
    conf = tmp_path / "exp.yaml"
    conf.write_text("report:\n  references:\n    - {metric: mse, value: 90, tolerance: 1, "
                    "where: {algorithm: a}, source: paper C}\n")
    assert main([str(tmp_path / "s"), "--published", "--references", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "OUT OF TOLERANCE" in out and "paper C" in out
