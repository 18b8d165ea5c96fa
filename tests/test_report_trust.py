"""Reports that cannot mislead: each run counted once, only like averaged with like, bold
only for a significant winner, cached builds marked, a terminal-sized default table."""
from __future__ import annotations

import warnings

import pytest

from benchpq.report import (
    DuplicateRunWarning,
    SplitRowsWarning,
    load_records,
    pivot,
    summary_table,
    to_latex,
    to_markdown,
)
from benchpq.report.cli import main
from benchpq.report.formatting import INTERVAL_RULE, PAIRED_RULE, best_cells, interval_note
from benchpq.report.pareto import pareto_points
from benchpq.store.records import record_path, write_record


def record(rid, alg="faiss_pq", seed=0, threads=1, metrics=None, cached=False, M=8,
           started="2026-01-01T00:00:00+00:00", cpu="CPU A", search=None):
    params = {"M": M, **(search or {})}
    return {"run_id": rid, "build_id": f"b-{rid}", "status": "ok", "message": "",
            "algorithm": alg, "dataset": "siftsmall", "task": "search", "params": params,
            "seed": seed, "threads": threads, "simd": "avx2", "code_stamp": "c0ffee" * 4,
            "build_cached": cached,
            "metrics": metrics if metrics is not None else {
                "recall@1": 0.4, "recall@10": 0.9, "recall@100": 1.0, "mse": 2.0e4,
                "train_s": 1.0, "search_s": 0.1, "code_bits": 64},
            "config": {"name": "s", "dataset_fingerprint": "f" * 16},
            "provenance": {"started_at": started, "cpu_model": cpu}, "wall_s": 1.0}


def write(folder, rec):
    write_record(record_path(folder, rec["run_id"]), rec)


def md_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| ") and "---" not in line]


# --------------------------------------------------------------------- each run once

def test_a_run_recorded_in_two_sweeps_counts_once(tmp_path):
    a, b = tmp_path / "search-siftsmall", tmp_path / "paired-siftsmall"
    shared = record("r0", seed=0, metrics={"recall@10": 0.90})
    write(a, shared)
    write(b, shared)
    write(b, record("r1", seed=1, metrics={"recall@10": 0.80}))
    df = load_records(tmp_path)
    assert sorted(df.run_id) == ["r0", "r1"]  # 3 files, 2 runs
    assert df.attrs["duplicate_records"] == 1
    table = pivot(df, "algorithm", None, "recall@10")
    assert table.count.iat[0, 0] == 2
    assert table.mean.iat[0, 0] == pytest.approx(0.85)  # not (0.9 + 0.9 + 0.8) / 3
    text = summary_table(df)
    assert "mean over 2 runs" in text and "1 record of runs already read" in text


def test_differing_copies_of_a_run_keep_the_newest_and_warn(tmp_path):
    write(tmp_path / "old", record("r0", metrics={"recall@10": 0.5},
                                   started="2026-01-01T00:00:00+00:00"))
    write(tmp_path / "new", record("r0", metrics={"recall@10": 0.7},
                                   started="2026-02-01T00:00:00+00:00"))
    with pytest.warns(DuplicateRunWarning, match="r0"):
        df = load_records(tmp_path)
    assert len(df) == 1 and df["recall@10"].iat[0] == 0.7


# ------------------------------------------------------------------- like with like

def test_threads_1_and_2_make_two_rows_and_a_warning(tmp_path):
    for seed in (0, 1):
        write(tmp_path, record(f"t1-{seed}", seed=seed, threads=1,
                               metrics={"train_s": 10.0 + seed, "recall@10": 0.9}))
        write(tmp_path, record(f"t2-{seed}", seed=seed, threads=2,
                               metrics={"train_s": 5.0 + seed, "recall@10": 0.9}))
    df = load_records(tmp_path)
    with pytest.warns(SplitRowsWarning, match="threads"):
        table = pivot(df, "algorithm", None, ["train_s"])
    assert table.rows == ["algorithm", "threads"]
    assert list(table.mean["train_s"]) == [10.5, 5.5]
    assert any("split by threads" in note for note in table.notes)
    with pytest.warns(SplitRowsWarning):
        text = summary_table(df)
    assert len([r for r in md_rows(text) if r[0] == "faiss_pq"]) == 2
    assert "split by threads" in text


@pytest.mark.parametrize("column, values", [
    ("simd", ("avx2", "avx512")), ("machine", ("CPU A", "CPU B")),
    ("code_stamp", ("aaaa" * 4, "bbbb" * 4)), ("dataset_fingerprint", ("1" * 16, "2" * 16)),
    ("rerank_factor", (None, 10)), ("query_mode", ("batch", "single"))])
def test_every_condition_splits_rows(tmp_path, column, values):
    for i, value in enumerate(values):
        rec = record(f"r{i}", cpu=value if column == "machine" else "CPU A")
        if column == "dataset_fingerprint":
            rec["config"]["dataset_fingerprint"] = value
        elif column == "query_mode":  # all queries in one call, or one call per query
            rec["config"]["task"] = {"name": "search", "query_mode": value}
        elif column == "rerank_factor":  # a search re-ranked by exact distances, or not
            if value is not None:
                rec["metrics"][column] = value
        elif column != "machine":
            rec[column] = value
        write(tmp_path, rec)
    df = load_records(tmp_path)
    with pytest.warns(SplitRowsWarning, match=column):
        table = pivot(df, "algorithm", None, "recall@10")
    assert len(table.mean) == 2


def test_runs_differing_only_by_seed_are_averaged_without_warning(tmp_path):
    for seed in range(3):
        write(tmp_path, record(f"r{seed}", seed=seed))
    df = load_records(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = pivot(df, "algorithm", None, "recall@10")
    assert table.count.iat[0, 0] == 3 and table.notes == []


def test_pareto_fronts_never_join_threads(tmp_path):
    for threads, qps in ((1, 1000.0), (2, 1900.0)):
        for nprobe, recall in ((2, 0.5), (8, 0.8)):
            write(tmp_path, record(f"t{threads}-{nprobe}", threads=threads,
                                   search={"nprobe": nprobe},
                                   metrics={"recall@10": recall, "qps": qps / nprobe}))
    df = load_records(tmp_path)
    with pytest.warns(SplitRowsWarning, match="threads"):
        front = pareto_points(df)
    # one front per thread count: each keeps both its points (one joined front would drop
    # the threads=1 points, dominated by the threads=2 ones)
    assert sorted(front.groupby("threads").size()) == [2, 2]


def test_code_stamps_that_follow_the_algorithm_split_no_front(tmp_path):
    """Every plugin has a code stamp of its own: fronts of several algorithms are one per
    algorithm, without a warning (only a stamp varying within one algorithm splits)."""
    for alg in ("pq", "faiss_pq"):
        for nprobe, recall in ((2, 0.5), (8, 0.8)):
            rec = record(f"{alg}-{nprobe}", alg=alg, search={"nprobe": nprobe},
                         metrics={"recall@10": recall, "qps": 1000.0 / nprobe})
            rec["code_stamp"] = alg * 4
            write(tmp_path, rec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        front = pareto_points(load_records(tmp_path))
    assert "code_stamp" not in front.columns and len(front) == 4


# --------------------------------------------------------------------------- bold rule

def test_overlapping_intervals_are_not_bold(tmp_path):
    write(tmp_path, record("a", alg="faiss_pq", metrics={
        "recall@100": 0.98, "recall@100_ci_low": 0.95, "recall@100_ci_high": 1.0}))
    write(tmp_path, record("b", alg="nanopq_pq", metrics={
        "recall@100": 0.97, "recall@100_ci_low": 0.93, "recall@100_ci_high": 1.0}))
    table = pivot(load_records(tmp_path), "algorithm", "M", "recall@100")
    latex = to_latex(table)
    assert "\\textbf" not in latex
    assert "0.980 [0.950, 1.000]" in latex
    assert "no bold" in interval_note(table)


def test_apart_intervals_are_bold_and_the_note_names_the_rule(tmp_path):
    write(tmp_path, record("a", alg="faiss_pq", metrics={
        "recall@100": 0.98, "recall@100_ci_low": 0.96, "recall@100_ci_high": 0.99}))
    write(tmp_path, record("b", alg="nanopq_pq", metrics={
        "recall@100": 0.90, "recall@100_ci_low": 0.87, "recall@100_ci_high": 0.93}))
    table = pivot(load_records(tmp_path), "algorithm", None, "recall@100")
    mask, rules = best_cells(table)
    assert mask[:, 0].tolist() == [True, False] and rules == {INTERVAL_RULE}
    assert "\\textbf{0.980 [0.960, 0.990]}" in to_latex(table)
    assert INTERVAL_RULE in interval_note(table)


def test_single_runs_without_intervals_are_never_bold(tmp_path):
    write(tmp_path, record("a", alg="faiss_pq", metrics={"mse": 100.0}))
    write(tmp_path, record("b", alg="nanopq_pq", metrics={"mse": 200.0}))
    table = pivot(load_records(tmp_path), "algorithm", None, "mse")
    assert "**" not in to_markdown(table)


def test_paired_seeds_decide_where_intervals_overlap(tmp_path):
    # B is always 0.01 below A on the same seed, while the seeds move both by 0.1: the
    # intervals over seeds overlap, the paired differences do not
    for seed, base in enumerate((0.5, 0.6, 0.7, 0.8)):
        write(tmp_path, record(f"a{seed}", alg="A", seed=seed, metrics={"recall@10": base}))
        write(tmp_path, record(f"b{seed}", alg="B", seed=seed,
                               metrics={"recall@10": base - 0.01 - 0.001 * seed}))
    table = pivot(load_records(tmp_path), "algorithm", None, "recall@10")
    mask, rules = best_cells(table)
    assert mask[:, 0].tolist() == [True, False] and rules == {PAIRED_RULE}
    assert table.low.iat[0, 0] < table.high.iat[1, 0]  # the intervals do overlap


# ------------------------------------------------------------------------ cached builds

def test_values_of_a_cached_build_are_marked(tmp_path):
    write(tmp_path, record("fresh", alg="faiss_pq", cached=False))
    write(tmp_path, record("reused", alg="faiss_opq", cached=True))
    table = pivot(load_records(tmp_path), "algorithm", None, ["recall@10", "train_s"])
    rows = {r[0]: r for r in md_rows(to_markdown(table))}
    assert rows["faiss_opq"][2].endswith("†") and not rows["faiss_opq"][1].endswith("†")
    assert not rows["faiss_pq"][2].endswith("†")
    assert "$^\\dagger$" in to_latex(table)
    assert "model cache" in interval_note(table)


# ---------------------------------------------------------------------------- terminal

def test_default_summary_fits_120_columns(tmp_path):
    metrics = {"recall@1": 0.41234, "recall@10": 0.9, "recall@100": 0.99, "10-recall@10": 0.7,
               "mse": 21234.5, "train_s": 12.3, "encode_s": 1.2, "add_s": 0.2, "search_s": 0.1,
               "search_s_median": 0.11, "qps": 10000.0, "code_bits": 64, "model_bytes": 131072,
               "peak_rss_bytes": 300_000_000, "recall@1_ci_low": 0.38, "recall@1_ci_high": 0.44,
               "recall@10_ci_low": 0.88, "recall@10_ci_high": 0.92}
    for alg in ("faiss_ivfpq", "nanopq_opq", "faiss_pqfs"):
        for M in (8, 16):
            write(tmp_path, record(f"{alg}-{M}", alg=alg, M=M, metrics=metrics))
    df = load_records(tmp_path)
    text = summary_table(df)
    assert max(len(line) for line in text.splitlines() if line.startswith("|")) <= 120
    assert "--wide" in text  # the intervals were left out, and it says so
    wide = summary_table(df, wide=True)
    assert max(len(line) for line in wide.splitlines()) > 120 and "qps" in wide


def test_default_rows_leave_out_params_that_only_follow_the_algorithm(tmp_path):
    """As in the quickstart: every algorithm has params of its own (Ks, init, nbits, ...);
    only a param that varies within one algorithm (nprobe of a search grid) is a row key."""
    own = {"Ks": 256, "iter": 25, "init": "random", "max_points_per_centroid": 256}
    for alg, params in (("pq", own), ("opq", {**own, "niter": 50, "final_init": "loop"}),
                        ("faiss_pq", {"nbits": 8}), ("nanopq_opq", {"rotation_iter": 10})):
        rec = record(alg, alg=alg)
        rec["params"] = {"M": 8, **params}
        write(tmp_path, rec)
    for nprobe in (2, 8, 32):
        rec = record(f"ivf{nprobe}", alg="faiss_ivfpq")
        rec["params"] = {"M": 8, "nbits": 8, "nlist": 64, "nprobe": nprobe}
        write(tmp_path, rec)
    text = summary_table(load_records(tmp_path))
    header = md_rows(text)[0]
    assert header[:2] == ["algorithm", "nprobe"] and "Ks" not in header and "init" not in header
    assert max(len(line) for line in text.splitlines()) <= 120  # notes wrapped too


def test_misspelt_report_column_suggests_the_right_name(tmp_path, capsys):
    write(tmp_path, record("a"))
    assert main([str(tmp_path), "--rows", "algorithm", "--values", "recal@10"]) == 2
    assert "did you mean 'recall@10'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- baseline

def test_baseline_ratios_only_where_a_ratio_means_something(tmp_path, capsys):
    metrics = {"recall@10": 0.9, "mse": 2.0e4, "train_s": 2.0, "search_s": 0.2,
               "train_rss_delta_bytes": 10, "search_rss_delta_bytes": 0, "code_bits": 64,
               "peak_rss_bytes": 4e8}
    write(tmp_path, record("ours", alg="pq", metrics=metrics))
    write(tmp_path, record("theirs", alg="faiss_pq", metrics={**metrics, "train_s": 4.0}))
    assert main([str(tmp_path), "--baseline", "pq=faiss_pq"]) == 0
    header = md_rows(capsys.readouterr().out)[0]
    ratios = [h for h in header if h.endswith(" ratio")]
    assert ratios == ["mse ratio", "train_s ratio", "search_s ratio", "code_bits ratio",
                      "peak_rss_bytes ratio"]  # no RSS delta, in the summary's order


# ------------------------------------------------------------------------------- paper

def test_interval_printed_to_the_precision_of_its_mean(tmp_path):
    for seed, value in enumerate((21000.0, 21500.0, 22000.0)):
        write(tmp_path, record(f"r{seed}", seed=seed, metrics={"mse": value,
                                                              "recall@10": 0.9 + seed / 100}))
    text = to_markdown(pivot(load_records(tmp_path), "algorithm", None, ["mse", "recall@10"]))
    row = md_rows(text)[1]
    assert row[1] == "21,500 ± 1,242" and row[2] == "0.910 ± 0.025"


# ------------------------------------------------------------------- adding a metric

def fanout_records(folder, specs=None):
    """Two algorithms x 3 seeds; 'wide' has 'fanout' 2.0 higher on every seed."""
    for seed in range(3):
        for alg, fanout in (("narrow", 4.0 + seed), ("wide", 6.0 + seed)):
            rec = record(f"{alg}{seed}", alg=alg, seed=seed,
                         metrics={"recall@10": 0.9, "fanout": fanout})
            if specs:
                rec["metric_specs"] = specs
            write(folder, rec)


def check_fanout_everywhere(df, tmp_path):
    from benchpq.report import render
    table = pivot(df, "algorithm", None, ["recall@10", "fanout"])
    markdown, latex = to_markdown(table), to_latex(table)
    wide_row = {r[0]: r for r in md_rows(markdown)}["wide"]
    assert wide_row[2] == "**7 ± 2**"  # higher is better: the paired winner is bold
    assert "Fan-out (nodes)" in latex and "\\textbf{7 $\\pm$ 2}" in latex
    assert "fanout" in render_csv(table)
    html = render(table, "html")
    assert "fanout" in html and "<strong>7 ± 2</strong>" in html


def render_csv(table):
    from benchpq.report import render
    return render(table, "csv").splitlines()[0]


def test_a_metric_added_to_the_table_reaches_every_format(tmp_path, monkeypatch):
    from benchpq import metric_table
    entry = metric_table.Metric("fanout", "Children visited per node of a search tree.",
                                unit="nodes", direction="max", display="Fan-out (nodes)",
                                kind="rate", scope="search")
    monkeypatch.setitem(metric_table.CORE, "fanout", entry)  # its entry, and nothing else
    metric_table._core.cache_clear()
    try:
        fanout_records(tmp_path / "results")
        check_fanout_everywhere(load_records(tmp_path / "results"), tmp_path)
    finally:
        metric_table._core.cache_clear()


def test_a_metric_a_plugin_declares_reaches_every_format_from_its_records(tmp_path):
    from benchpq.metric_table import Metric, spec
    fanout = spec(Metric("fanout", "Children visited per node of a search tree.",
                         unit="nodes", direction="max", display="Fan-out (nodes)",
                         kind="rate", scope="search"))
    fanout_records(tmp_path / "results", specs={"fanout": fanout})
    check_fanout_everywhere(load_records(tmp_path / "results"), tmp_path)


def test_an_undeclared_metric_is_an_error_not_a_guess(tmp_path, capsys):
    fanout_records(tmp_path)
    assert main([str(tmp_path), "--rows", "algorithm", "--values", "fanout"]) == 2
    assert "unknown metric 'fanout'" in capsys.readouterr().err
