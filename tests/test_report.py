"""Tests of benchpq.report and the benchpq-report CLI, on synthetic run records."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchpq.report import (
    CorruptRecordWarning,
    ReportError,
    SplitRowsWarning,
    better_direction,
    format_number,
    load_records,
    pivot,
    plot,
    records_to_frame,
    summary_table,
    to_csv,
    to_latex,
    to_markdown,
)
from benchpq.report.cli import main
from benchpq.report.formatting import interval_note
from benchpq.store.records import record_path, write_record

REPO = Path(__file__).resolve().parents[1]
RECALL_BASE = {"faiss_pq": 0.90, "nanopq": 0.88}
MSE = {("faiss_pq", 4): 36000.0, ("faiss_pq", 8): 22000.0,
       ("nanopq", 4): 36500.0, ("nanopq", 8): 21900.0}
FAIL_MESSAGE = "ValueError: M=16 does not divide d=100"


def recall10(alg: str, M: int, seed: int) -> float:
    return RECALL_BASE[alg] + M / 100 + 0.004 * seed


def mse(alg: str, M: int, seed: int) -> float:
    return MSE[(alg, M)] * (1 + 0.01 * seed)


def make_record(rid, alg, M, seed, status="ok", message="", params=None, metrics=None):
    if metrics is None and status == "ok":
        metrics = {"recall@1": recall10(alg, M, seed) / 2, "recall@10": recall10(alg, M, seed),
                   "recall@100": 1.0, "10-recall@10": recall10(alg, M, seed) - 0.1,
                   "mse": mse(alg, M, seed), "train_s": 0.5 * M + 0.1 * seed, "add_s": 0.02,
                   "search_s": 0.05, "qps": 2000.0 + seed, "code_bits": 8 * M,
                   "model_bytes": 256 * 128 * 4, "peak_rss_bytes": 300_000_000}
    return {"run_id": rid, "status": status, "message": message, "algorithm": alg,
            "dataset": "siftsmall", "task": "search",
            "params": params if params is not None else {"M": M, "nbits": 8},
            "seed": seed, "threads": 1, "metrics": metrics or {}, "config": {"name": "sweep_a"},
            "provenance": {"started_at": "2024-05-01T12:00:00+00:00"}, "wall_s": 2.5}


@pytest.fixture
def results(tmp_path) -> Path:
    """results/sweep_a: 2 algorithms x M in {4, 8} x 2 seeds, a failed run, a corrupt file."""
    sweep = tmp_path / "results" / "sweep_a"
    n = 0
    for alg in RECALL_BASE:
        for M in (4, 8):
            for seed in (0, 1):
                n += 1
                rid = f"run{n:02d}"
                write_record(record_path(sweep, rid), make_record(rid, alg, M, seed))
    failed = make_record("failed", "opq", 16, 0, status="error", message=FAIL_MESSAGE + "\ntrace")
    write_record(record_path(sweep, "failed"), failed)
    (sweep / "records" / "broken.json").write_text("{not json")
    return tmp_path / "results"


@pytest.fixture
def runs(results) -> pd.DataFrame:
    with pytest.warns(CorruptRecordWarning, match="broken.json"):
        return load_records(results, status=None)


def md_cells(markdown: str, first: str, second: str) -> list[str]:
    """Cells of the markdown row whose first two cells are ``first`` and ``second``."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == [first, second]:
            return cells
    raise AssertionError(f"no row {first}, {second} in\n{markdown}")


def md_header(markdown: str) -> list[str]:
    line = next(ln for ln in markdown.splitlines() if ln.startswith("| algorithm"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


# ------------------------------------------------------------------------------- loading

def test_load_records_one_row_per_run(runs):
    assert runs.shape[0] == 9
    for column in ("run_id", "sweep", "status", "message", "algorithm", "dataset", "task", "seed",
                   "threads", "M", "nbits", "recall@10", "mse", "10-recall@10", "wall_s",
                   "started_at"):
        assert column in runs.columns
    assert set(runs["sweep"]) == {"sweep_a"}
    assert runs["status"].value_counts().to_dict() == {"ok": 8, "error": 1}
    assert pd.api.types.is_datetime64_any_dtype(runs["started_at"])
    assert runs.attrs["corrupt_files"][0].endswith("broken.json")


def test_load_records_status_filter(results):
    with pytest.warns(CorruptRecordWarning):
        ok = load_records(results / "sweep_a")
    assert len(ok) == 8 and set(ok["status"]) == {"ok"}
    assert ok.attrs["excluded_by_status"] == {"error": 1}


def test_load_records_accepts_records_dir_and_file(results):
    records = results / "sweep_a" / "records"
    with pytest.warns(CorruptRecordWarning):
        assert len(load_records(records, status=None)) == 9
    one = load_records(records / "run01.json")
    assert len(one) == 1 and one["sweep"].iloc[0] == "sweep_a"
    assert len(load_records([records / "run01.json", records / "run02.json"])) == 2


def test_load_records_errors(tmp_path):
    with pytest.raises(ReportError, match="no such file or directory"):
        load_records(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no run records"):
        load_records(tmp_path / "empty")


def test_colliding_names_are_prefixed():
    record = make_record("x", "kmeans", 8, 0, params={"mse": True, "k": 3},
                         metrics={"mse": 1.0, "threads": 4})
    df = records_to_frame([record])
    assert {"param.mse", "k", "mse", "metric.threads", "threads"} <= set(df.columns)
    assert df["sweep"].iloc[0] == "sweep_a"  # from config["name"] when no path is known


# ---------------------------------------------------------------------------------- pivot

def test_pivot_mean_and_std_over_seeds(runs):
    table = pivot(runs[runs.status == "ok"], "algorithm", "M", ["recall@10", "mse"])
    for alg in RECALL_BASE:
        for M in (4, 8):
            r = [recall10(alg, M, s) for s in (0, 1)]
            e = [mse(alg, M, s) for s in (0, 1)]
            assert table.mean.loc[alg, ("recall@10", M)] == pytest.approx(np.mean(r))
            assert table.std.loc[alg, ("recall@10", M)] == pytest.approx(np.std(r, ddof=1))
            assert table.mean.loc[alg, ("mse", M)] == pytest.approx(np.mean(e))
            assert table.std.loc[alg, ("mse", M)] == pytest.approx(np.std(e, ddof=1))
            assert table.count.loc[alg, ("mse", M)] == 2


def test_pivot_warns_when_cells_mix_params(runs):
    with pytest.warns(SplitRowsWarning, match="M"):
        pivot(runs, "algorithm", None, "recall@10")


def test_pivot_unknown_column(runs):
    with pytest.raises(ReportError, match="unknown column 'nope'.*available columns: .*recall@10"):
        pivot(runs, "nope", None, "recall@10")


# ----------------------------------------------------------------------------- formatting

def test_better_direction_and_numbers():
    assert [better_direction(n) for n in ("recall@1", "10-recall@10", "qps", "nmi", "ari")] \
        == ["max"] * 5
    assert [better_direction(n) for n in ("mse", "error", "train_s", "model_bytes",
                                          "empty_clusters")] == ["min"] * 5
    # setup sizes and counts have no "best": a float clusterer's code_bits 0 is not bolded
    assert [better_direction(n) for n in ("code_bits", "n_base", "n_query")] == [None] * 3
    assert format_number("recall@10", 0.53214) == "0.532"
    assert format_number("mse", 21965.4) == "21,965"
    assert format_number("mse", 0.0123456) == "0.01235"
    assert format_number("train_s", 0.012345) == "0.0123"
    assert format_number("peak_rss_bytes", 3 * 2**20, human_bytes=True) == "3 MiB"
    assert format_number("peak_rss_bytes", 1003 * 2**20, human_bytes=True) == "1003 MiB"
    assert format_number("peak_rss_bytes", 999.4 * 2**20, human_bytes=True) == "999 MiB"
    assert format_number("peak_rss_bytes", 3 * 2**20) == "3,145,728"


def t_half_width(values) -> float:
    """Half-width of the 95% t interval of the mean (t table: t(0.975, 1) = 12.706)."""
    assert len(values) == 2
    return 12.706 * np.std(values, ddof=1) / np.sqrt(2)


def test_markdown_shows_t_intervals_and_bolds_only_significant_bests(runs):
    # the runs pair by seed (0 and 1 in every cell): a paired t test over the seeds decides
    text = to_markdown(pivot(runs[runs.status == "ok"], ["algorithm", "M"], None,
                             ["recall@10", "mse"]))
    header = md_header(text)
    recall, err = header.index("recall@10"), header.index("mse")
    best = md_cells(text, "faiss_pq", "8")
    seeds = [recall10("faiss_pq", 8, s) for s in (0, 1)]
    # faiss_pq M=8 (0.982) vs the runner-up nanopq M=8 (0.962): 0.02 apart on both seeds
    assert best[recall] == f"**{np.mean(seeds):.3f} ± {t_half_width(seeds):.3f}**"
    assert not best[err].startswith("**")
    # lowest mse (nanopq M=8, 22,010) against faiss_pq M=8 (22,110): the t intervals over
    # seeds overlap (± 1,391), but nanopq is 100 and 101 lower on the same seeds
    lowest_mse = md_cells(text, "nanopq", "8")
    assert lowest_mse[err] == "**22,010 ± 1,391**" and not lowest_mse[recall].startswith("**")
    assert not md_cells(text, "nanopq", "4")[recall].startswith("**")
    assert "paired t test over shared seeds" in interval_note(
        pivot(runs[runs.status == "ok"], ["algorithm", "M"], None, ["recall@10", "mse"]))


def test_single_runs_show_their_bootstrap_interval(results):
    sweep = results / "single"
    metrics = {"recall@10": 0.5, "recall@10_ci_low": 0.4, "recall@10_ci_high": 0.6,
               "mse": 10.0}
    for alg, recall in (("a", 0.5), ("b", 0.7)):
        record = make_record(alg, alg, 8, 0, metrics={**metrics, "recall@10": recall})
        write_record(record_path(sweep, alg), record)
    df = load_records(sweep)
    table = pivot(df, "algorithm", None, ["recall@10"])
    assert table.low.loc["a", "recall@10"] == 0.4 and table.high.loc["b", "recall@10"] == 0.6
    text = to_markdown(table)
    assert md_cells(text, "a", "0.500 [0.400, 0.600]")
    assert "0.700 [0.400, 0.600]" in text and "**" not in text  # the intervals overlap
    summary = summary_table(df)
    assert "recall@10_ci_low" not in summary and "bootstrap interval over queries" in summary


def test_latex_booktabs_bold_and_escaping(runs):
    text = to_latex(pivot(runs[runs.status == "ok"], ["algorithm", "M"], None,
                          ["recall@10", "mse"]), caption="PQ on siftsmall")
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\caption{PQ on siftsmall}"):
        assert token in text
    assert "faiss\\_pq" in text and "faiss_pq" not in text
    row = next(ln for ln in text.splitlines() if ln.startswith("faiss\\_pq & 8 &"))
    assert row.split(" & ")[2].startswith(r"\textbf{0.982 $\pm$ 0.025}")
    row = next(ln for ln in text.splitlines() if ln.startswith("nanopq & 8 &"))
    assert row.split(" & ")[3].startswith(r"\textbf{22,010 $\pm$")
    assert "Recall@10" in text and "MSE" in text  # display names in a paper table


def test_latex_two_level_header(runs):
    text = to_latex(pivot(runs[runs.status == "ok"], "algorithm", "M", ["recall@10", "mse"]))
    assert r"\multicolumn{2}{c}{Recall@10}" in text and r"\cmidrule(lr){2-3}" in text
    assert "algorithm & M=4 & M=8 & M=4 & M=8" in text


def test_csv_round_trip(runs):
    table = pivot(runs[runs.status == "ok"], "algorithm", "M", ["recall@10", "mse", "code_bits"])
    back = pd.read_csv(io.StringIO(to_csv(table))).set_index("algorithm")
    for alg in RECALL_BASE:
        for M in (4, 8):
            assert back.loc[alg, f"recall@10 (M={M})"] == pytest.approx(
                table.mean.loc[alg, ("recall@10", M)], rel=1e-12)
            assert back.loc[alg, f"mse (M={M}) std"] == pytest.approx(
                table.std.loc[alg, ("mse", M)], rel=1e-12)
            assert back.loc[alg, f"code_bits (M={M})"] == 8 * M
    assert "**" not in to_csv(table)
    assert pd.api.types.is_integer_dtype(back["code_bits (M=8)"])


# -------------------------------------------------------------------------------- summary

def test_summary_table_lists_failures(runs):
    text = summary_table(runs)
    header = md_header(text)
    assert header == ["algorithm", "M", "recall@1", "recall@10", "recall@100", "mse", "train_s",
                      "search_s", "code_bits"]
    wide = md_header(summary_table(runs, wide=True))
    assert {"10-recall@10", "qps", "model_bytes", "peak_rss_bytes"} <= set(wide)
    assert "Failed runs (1):" in text
    assert f"opq(M=16, nbits=8) seed=0 on siftsmall/search: error - {FAIL_MESSAGE}" in text
    assert "broken.json" in text
    latex = summary_table(runs, fmt="latex")
    assert r"\toprule" in latex and "% - opq(M=16" in latex


def test_summary_csv_has_failed_rows(runs):
    back = pd.read_csv(io.StringIO(summary_table(runs, fmt="csv")))
    assert list(back["status"]).count("ok") == 4
    failed = back[back["status"] == "error"]
    assert len(failed) == 1 and FAIL_MESSAGE in failed["message"].iloc[0]
    assert set(back.loc[back.status == "ok", "n_runs"]) == {2}


def test_summary_notes_runs_excluded_by_status(results):
    with pytest.warns(CorruptRecordWarning):
        ok = load_records(results)
    assert "not loaded because of their status (error: 1)" in summary_table(ok)


# ----------------------------------------------------------------------------------- plot

def test_plot_writes_png(runs, tmp_path):
    path = plot(runs, x="code_bits", y="recall@10", by="algorithm", path=tmp_path / "p" / "r.png",
                logx=True)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_plot_unknown_column(runs, tmp_path):
    with pytest.raises(ReportError, match="unknown column 'bits'"):
        plot(runs, x="bits", path=tmp_path / "p.png")


# ------------------------------------------------------------------------------------ CLI

def test_cli_prints_summary(results, capsys):
    assert main([str(results)]) == 0
    out, err = capsys.readouterr()
    assert "| algorithm" in out and "Failed runs (1):" in out and FAIL_MESSAGE in out
    assert "broken.json" in err and "Traceback" not in err


def test_cli_pivot_csv_and_plot(results, tmp_path, capsys):
    png = tmp_path / "fig.png"
    code = main([str(results), "--rows", "algorithm", "--cols", "M", "--values", "recall@100",
                 "--values", "mse", "--format", "csv", "--plot", str(png), "--x", "code_bits",
                 "--y", "recall@10", "--by", "algorithm"])
    assert code == 0
    back = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(back.columns[:3]) == ["algorithm", "recall@100 (M=4)", "recall@100 (M=4) std"]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_output_file_format_from_suffix(results, tmp_path):
    out = tmp_path / "table.tex"
    assert main([str(results), "--values", "recall@10", "--output", str(out)]) == 0
    assert r"\toprule" in out.read_text()


def test_cli_missing_dir(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file or directory" in err[0]


def test_cli_unknown_column(results, capsys):
    assert main([str(results), "--rows", "algorithm", "--values", "recal@10"]) == 2
    err = capsys.readouterr().err
    assert "unknown column 'recal@10'" in err and "available columns:" in err
    assert "Traceback" not in err


def test_cli_subprocess(results):
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "benchpq.report.cli", str(results), "--rows",
                           "algorithm,M", "--values", "recall@10"], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| faiss_pq  | 8   |" in done.stdout and "Traceback" not in done.stderr
    bad = subprocess.run([sys.executable, "-m", "benchpq.report.cli", str(results / "nope")],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_floor_keeps_runs_at_least_as_good(results, capsys):
    """--floor recall@10=T keeps runs with recall@10 >= T; a lower-is-better metric keeps
    runs at or below its floor."""
    with pytest.warns(CorruptRecordWarning, match="broken.json"):
        runs = load_records(results, status="ok")
    threshold = float(runs["recall@10"].median())
    assert main([str(results), "--floor", f"recall@10={threshold}", "--rows", "algorithm,M",
                 "--cols", "seed", "--values", "recall@10", "--format", "csv",
                 "--no-intervals"]) == 0
    back = pd.read_csv(io.StringIO(capsys.readouterr().out))
    kept = runs[runs["recall@10"] >= threshold]
    assert back.filter(like="recall@10").notna().sum().sum() == len(kept)
    assert back.filter(like="recall@10").min().min() >= threshold
    mse_floor = float(runs["mse"].median())
    assert main([str(results), "--floor", f"mse={mse_floor}", "--rows", "algorithm,M,seed",
                 "--values", "mse", "--format", "csv", "--no-intervals"]) == 0
    back = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(back) == int((runs["mse"] <= mse_floor).sum())
    assert back["mse"].max() <= mse_floor


@pytest.mark.parametrize("floor, message", [
    ("recall@10", "expected METRIC=NUMBER"), ("recall@10=high", "expected METRIC=NUMBER"),
    ("code_bits=64", "not a metric with a better direction"),
    ("nonsense=1", "not a metric with a better direction"),
    ("recall@10=1.5", "no run meets --floor recall@10=1.5")])
def test_a_bad_or_unmet_floor_is_named(results, capsys, floor, message):
    assert main([str(results), "--floor", floor]) == 2
    assert message in capsys.readouterr().err
