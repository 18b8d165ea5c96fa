"""benchpq-report --compare: paired comparisons by query and by seed, on synthetic records."""
import re

import numpy as np
import pytest

from benchpq.report import ReportError, load_records
from benchpq.report.cli import main
from benchpq.report.paired import paired_comparison, parse_pairs, render_paired
from benchpq.store.records import record_path, write_record

N_QUERIES = 200


def record(rid, algorithm, seed, ranks, mse, threads=1, M=8):
    hits = np.asarray(ranks) >= 0
    return {"run_id": rid, "status": "ok", "message": "", "algorithm": algorithm,
            "dataset": "toy", "task": "search", "seed": seed, "threads": threads,
            "params": {"M": M},
            "metrics": {"recall@10": float(hits.mean()), "mse": mse, "train_s": 1.0 + seed,
                        "per_query": {"nn_rank": [int(r) for r in ranks]}}}


@pytest.fixture
def sweep(tmp_path):
    """'same' ties 'base' on recall (other queries hit) and is 5% worse on mse; 'better' finds
    the neighbour of 30 more queries of 200 (recall +0.15)."""
    rng = np.random.default_rng(0)
    for seed in range(5):
        base = np.where(rng.random(N_QUERIES) < 0.5, 3, -1)
        same = base[rng.permutation(N_QUERIES)]
        better = base.copy()
        better[np.where(base < 0)[0][:30]] = 5
        noise = rng.normal(0, 1, 3)
        for name, ranks, mse in (("base", base, 100 + noise[0]), ("same", same, 105 + noise[1]),
                                 ("better", better, 100 + noise[2])):
            rid = f"{name}{seed}"
            write_record(record_path(tmp_path, rid), record(rid, name, seed, ranks, mse))
    return tmp_path


def test_paired_by_query_and_by_seed(sweep):
    df = load_records(sweep)
    same = paired_comparison(df, "same", "base").set_index("metric")
    assert list(same.index) == ["recall@10", "mse", "train_s"]
    assert same.loc["recall@10", "unit"] == "query x seed"
    assert same.loc["recall@10", "n"] == 5 * N_QUERIES
    assert same.loc["recall@10", "verdict"] == "no significant difference"
    assert same.loc["mse", "unit"] == "seed" and same.loc["mse", "n"] == 5
    assert same.loc["mse", "diff"] == pytest.approx(5, abs=1.5)
    assert same.loc["mse", "verdict"] == "base better" and same.loc["mse", "p"] < 0.01
    assert same.loc["mse", "p_wilcoxon"] == pytest.approx(0.0625)
    better = paired_comparison(df, "better", "base").set_index("metric")
    assert better.loc["recall@10", "diff"] == pytest.approx(0.15)
    assert better.loc["recall@10", "ci_low"] > 0.1 and better.loc["recall@10", "p"] < 1e-6
    assert better.loc["recall@10", "verdict"] == "better better"
    assert better.loc["train_s", "verdict"] == "no significant difference"


def test_recall_without_per_query_values_is_paired_by_seed(sweep):
    df = load_records(sweep)
    df["per_query"] = None
    row = paired_comparison(df, "better", "base", ["recall@10"]).iloc[0]
    assert row.unit == "seed" and row.n == 5 and row.verdict == "better better"


def test_rendering_bolds_only_significant_winners(sweep):
    frame = paired_comparison(load_records(sweep), "same", "base")
    text = render_paired(frame, "markdown")
    mse_line = next(ln for ln in text.splitlines() if ln.startswith("| mse"))
    recall_line = next(ln for ln in text.splitlines() if ln.startswith("| recall@10"))
    assert mse_line.count("**") == 2 and "base better" in mse_line
    assert "**" not in recall_line
    latex = render_paired(frame, "latex")
    assert latex.count(r"\textbf{") == 1 and r"\toprule" in latex
    assert "<0" not in latex.replace("$<$", "")      # a bare < is not a less-than in text mode
    assert render_paired(frame, "csv").startswith(
        "dataset,dataset_metric,task,threads,build_threads,metric")


def test_errors_are_clear(sweep, capsys):
    df = load_records(sweep)
    with pytest.raises(ReportError, match="no ok run of 'opq'"):
        paired_comparison(df, "opq", "base")
    with pytest.raises(ReportError, match="expected A=B"):
        parse_pairs(["pq"])
    assert main([str(sweep), "--compare", "same=base"]) == 0
    out = capsys.readouterr().out
    assert "### same vs base on toy" in out and "Paired by query" in out
    assert main([str(sweep), "--compare", "same"]) == 2
    assert "expected A=B" in capsys.readouterr().err


def latex_problems(text: str) -> list[str]:
    """What would stop ``text`` (a booktabs tabular) from compiling or reading as a paper
    table: unbalanced braces or environments, a row whose cells do not match the column
    spec, a special character outside math and commands, a missing booktabs rule."""
    problems = []
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("%")]
    body = "\n".join(lines)
    if body.count("{") - body.count(r"\{") != body.count("}") - body.count(r"\}"):
        problems.append("unbalanced braces")
    for env in ("tabular", "table"):
        if body.count(f"\\begin{{{env}}}") != body.count(f"\\end{{{env}}}"):
            problems.append(f"unbalanced {env}")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        if body.count(rule) != body.count(r"\begin{tabular}"):
            problems.append(f"{rule} missing")
    spec = body.split(r"\begin{tabular}{", 1)[1].split("}", 1)[0]
    columns = len(spec)
    for line in lines:
        if line.endswith(r"\\"):
            cells = line[:-2].replace(r"\&", "").split("&")
            spans = sum(int(s) - 1 for s in
                        re.findall(r"\\multicolumn\{(\d+)\}", line))
            if len(cells) + spans != columns:
                problems.append(f"{len(cells) + spans} cells for {columns} columns: {line}")
        text_mode = re.sub(r"\$[^$]*\$", "", line)
        for ch in ("_", "#", "<", ">", "±"):
            if re.search(rf"(?<!\\){re.escape(ch)}", text_mode):
                problems.append(f"bare {ch!r} in {line}")
        if re.search(r"(?<!\\)%", line):
            problems.append(f"bare '%' in {line}")
    return problems


def test_every_latex_table_is_well_formed(sweep, tmp_path, capsys):
    from benchpq.report import pivot, summary_table, to_latex
    df = load_records(sweep)
    tables = {
        "paired": render_paired(paired_comparison(df, "better", "base"), "latex"),
        "pivot": to_latex(pivot(df, "algorithm", "M", ["recall@10", "mse", "train_s"]),
                          caption="Paired runs, 5 seeds", label="tab:paired"),
        "summary": summary_table(df, fmt="latex", wide=True),
    }
    for name, text in tables.items():
        for part in text.split(r"\end{tabular}")[:-1]:
            part = part[part.index(r"\begin{tabular}"):] + r"\end{tabular}"
            assert latex_problems(part) == [], (name, part)
    pivot_text = tables["pivot"]
    # a paper table: display names with units, an interval at its mean's precision
    assert "MSE" in pivot_text and "Train time (s)" in pivot_text
    assert r"\caption{Paired runs, 5 seeds}" in pivot_text
    assert main([str(sweep), "--compare", "better=base", "--format", "latex"]) == 0
    out = capsys.readouterr().out
    assert latex_problems(out[out.index(r"\begin{tabular}"):]) == []


# ----------------------------------------------------------- one configuration per side

@pytest.fixture
def bits_sweep(tmp_path):
    """'ours' at bits 1 and 4 against 'theirs' at nb_bits 1 and 4, 3 seeds: the two name
    their bits differently, so nothing pairs 1 bit with 1 bit unless the user says so."""
    rng = np.random.default_rng(1)
    for seed in range(3):
        for bits, hit in ((1, 0.3), (4, 0.9)):
            ranks = np.where(rng.random(N_QUERIES) < hit, 0, -1)
            for name, key in (("ours", "bits"), ("theirs", "nb_bits")):
                rid = f"{name}{bits}-{seed}"
                rec = record(rid, name, seed, ranks, 10.0 / bits)
                rec["params"] = {key: bits}
                write_record(record_path(tmp_path, rid), rec)
    return tmp_path


def test_sides_with_several_configurations_are_refused_naming_the_param(bits_sweep):
    df = load_records(bits_sweep)
    with pytest.raises(ReportError, match=r"runs of ours .* differ in bits \(1, 4\).*ours\[bits="):
        paired_comparison(df, "ours", "theirs")


def test_a_configuration_named_in_brackets_pairs_like_with_like(bits_sweep, capsys):
    df = load_records(bits_sweep)
    (one, four) = parse_pairs(["ours[bits=1]=theirs[nb_bits=1]", "ours[bits=4]=theirs[nb_bits=4]"])
    for pair, recall in ((one, 0.3), (four, 0.9)):
        frame = paired_comparison(df, *pair).set_index("metric")
        assert frame.loc["recall@10", "diff"] == 0.0  # the same hits on both sides
        assert abs(frame.loc["recall@10", "mean A"] - recall) < 0.06
        assert frame.loc["mse", "mean A"] == frame.loc["mse", "mean B"]
    assert main([str(bits_sweep), "--compare", "ours[bits=4]=theirs[nb_bits=4],"
                 "ours[bits=1]=theirs[nb_bits=1]", "--values", "recall@10"]) == 0
    out = capsys.readouterr().out
    assert "ours[bits=4] vs theirs[nb_bits=4]" in out and "ours[bits=1] vs theirs" in out
    assert main([str(bits_sweep), "--compare", "ours=theirs"]) == 2
    assert "differ in bits" in capsys.readouterr().err


def test_param_default_names_the_runs_that_left_it_unset(tmp_path):
    # 'ours' ran with its default bits (not recorded) and with bits=4: the default is named
    rng = np.random.default_rng(2)
    for seed in range(2):
        for bits, hit in ((None, 0.3), (4, 0.9)):
            ranks = np.where(rng.random(N_QUERIES) < hit, 0, -1)
            for name in ("ours", "theirs"):
                rid = f"{name}{bits}-{seed}"
                rec = record(rid, name, seed, ranks, 1.0)
                rec["params"] = {} if bits is None else {"bits": bits}
                write_record(record_path(tmp_path, rid), rec)
    df = load_records(tmp_path)
    frame = paired_comparison(df, "ours[bits=default]", "theirs[bits=default]")
    row = frame.set_index("metric").loc["recall@10"]
    assert abs(row["mean A"] - 0.3) < 0.06 and row["diff"] == 0.0
    four = paired_comparison(df, "ours[bits=4]", "ours[bits=default]").set_index("metric")
    assert four.loc["recall@10", "diff"] == pytest.approx(0.6, abs=0.06)


@pytest.mark.parametrize("spec, message", [
    ("ours[bits=1=theirs", "without its ']'"),
    ("ours[bits]=theirs", "'bits' is not param=value"),
    ("ours[M=8]=theirs", "'M' is not a param of 'ours'"),
    ("ours[bits=2]=theirs", "no ok run of ours\\[bits=2\\]")])
def test_bad_configuration_names_are_named(bits_sweep, spec, message):
    df = load_records(bits_sweep)
    with pytest.raises(ReportError, match=message):
        paired_comparison(df, *parse_pairs([spec])[0])
