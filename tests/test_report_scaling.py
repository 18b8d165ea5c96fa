"""Power-law fits of cost against data size (benchpq.report.scaling) and their CLI
(--fit, --scaling, --extrapolate), on synthetic records whose costs follow known laws."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from benchpq.report import ReportError, load_records
from benchpq.report.cli import main
from benchpq.report.scaling import power_law_slope, scaling_fits
from benchpq.store.records import record_path, write_record

SIZES = (1_000_000, 10_000_000, 100_000_000)


def record(rid, alg, n, seed, metrics):
    return {"run_id": rid, "status": "ok", "message": "", "algorithm": alg,
            "dataset": "synthetic_sift", "task": "search",
            "params": {"M": 8, "dataset.n_base": n, "task.n_clusters": 10}, "seed": seed,
            "threads": 1,
            "metrics": {"n_base": n, **metrics}, "config": {"name": "scale"},
            "provenance": {"started_at": "2026-12-06T12:00:00+00:00"}, "wall_s": 1.0}


@pytest.fixture
def scale_results(tmp_path):
    """pq: add_s = 2e-7 N (linear), search_s = 1e-9 N^1.1 + noise over 2 seeds averaged out;
    flat: train_s constant; one record with no add_s at 100M."""
    sweep = tmp_path / "scale"
    i = 0
    for n in SIZES:
        for seed, wobble in ((0, 0.99), (1, 1.01)):
            i += 1
            write_record(record_path(sweep, f"r{i}"), record(
                f"r{i}", "pq", n, seed, {"add_s": 2e-7 * n, "search_s": 1e-9 * n ** 1.1 * wobble,
                                         "train_s": 4.0, "add_peak_rss_bytes": 64 * n}))
        i += 1
        metrics = {"train_s": 5.0}
        if n < SIZES[-1]:
            metrics["add_s"] = 3e-7 * n ** 0.9
        write_record(record_path(sweep, f"r{i}"), record(f"r{i}", "ivf", n, 0, metrics))
    return sweep


def test_slopes_and_extrapolation(scale_results):
    fits = scaling_fits(load_records(scale_results), ["add_s", "search_s", "train_s"],
                        to=1e9).set_index(["algorithm", "metric"])
    assert fits.loc[("pq", "add_s"), "slope"] == pytest.approx(1.0, abs=1e-9)
    assert fits.loc[("pq", "add_s"), "at_to"] == pytest.approx(200.0, rel=1e-9)
    search = fits.loc[("pq", "search_s")]
    # seeds averaged before the fit: the wobble cancels, the law is recovered
    assert search.slope == pytest.approx(1.1, abs=1e-9)
    assert search.at_x_max == pytest.approx(1e-9 * 1e8 ** 1.1, rel=1e-9)
    assert search.at_to == pytest.approx(1e-9 * 1e9 ** 1.1, rel=1e-9)
    assert fits.loc[("pq", "train_s"), "slope"] == pytest.approx(0.0, abs=1e-12)
    ivf_add = fits.loc[("ivf", "add_s")]  # measured at two sizes only
    assert ivf_add.points == 2 and ivf_add.x_max == 1e7
    assert ivf_add.slope == pytest.approx(0.9, abs=1e-9)
    assert ivf_add.at_to == pytest.approx(3e-7 * 1e9 ** 0.9, rel=1e-9)


def test_slope_needs_two_sizes_and_positive_values():
    assert np.isnan(power_law_slope(np.array([1e6, 1e6]), np.array([1.0, 2.0])))
    assert np.isnan(power_law_slope(np.array([1e6, 1e7]), np.array([0.0, 2.0])))
    assert power_law_slope(np.array([1e6, 1e7]), np.array([1.0, 100.0])) == pytest.approx(2.0)


def test_cli_fit_table_and_plot(scale_results, tmp_path, capsys):
    png = tmp_path / "add.png"
    assert main([str(scale_results), "--fit", "--values", "add_s,add_peak_rss_bytes",
                 "--extrapolate", "1e9", "--scaling", str(png), "--y", "add_s"]) == 0
    out, err = capsys.readouterr()
    lines = [ln for ln in out.splitlines() if ln.startswith("| pq") or ln.startswith("| ivf")]
    pq_add = next(ln for ln in lines if "| pq" in ln and "add_s" in ln)
    assert "1.00" in pq_add and "200" in pq_add
    rss = next(ln for ln in lines if "add_peak_rss_bytes" in ln)
    assert "59.6 GiB" in rss  # 64 bytes x 1e9, extrapolated along slope 1
    assert "least-squares slope" in out and f"wrote {png}" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([str(scale_results), "--scaling", str(png), "--y", "add_s",
                 "--by", "algorithm,task.n_clusters"]) == 0  # a dotted param names a line
    assert main([str(scale_results), "--fit", "--values", "add_s", "--by", "task.n_clusters",
                 "--by", "algorithm"]) == 0
    assert "| 10 " in capsys.readouterr().out
    assert main([str(scale_results), "--fit", "--values", "add_s", "--format", "csv"]) == 0
    frame = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert set(frame.algorithm) == {"pq", "ivf"} and "at_to" not in frame


@pytest.mark.parametrize("argv, words", [
    (["--extrapolate", "1e9"], "goes with --fit or --scaling"),
    (["--fit", "--values", "add_s", "--extrapolate", "-3"], "expected a size > 0"),
    (["--fit"], "needs the metrics to fit"),
    (["--fit", "--values", "nope_s"], "nope_s"),
    (["--scaling", "x.png"], "--scaling needs --y"),
    (["--scaling", "x.png", "--y", "recall@10"], "unknown column 'recall@10'"),
])
def test_cli_errors(scale_results, capsys, argv, words):
    assert main([str(scale_results), *argv]) == 2
    assert words in capsys.readouterr().err


def test_fit_needs_numeric_sizes(scale_results):
    runs = load_records(scale_results).assign(n_base="many")
    with pytest.raises(ReportError, match="numeric 'n_base'"):
        scaling_fits(runs, ["add_s"])


def test_the_html_report_draws_growth_when_the_size_varies(scale_results, tmp_path):
    from benchpq.report.html import growth_specs, write_site
    runs = load_records(scale_results)
    assert [y for _, y in growth_specs(runs)] == ["train_s", "add_s", "search_s",
                                                  "add_peak_rss_bytes"]
    assert growth_specs(runs[runs.n_base == SIZES[0]]) == []  # one size: nothing to fit
    index = write_site(runs, tmp_path / "site")
    pages = [p for p in index.parent.rglob("*.html") if "Growth with the data size" in
             p.read_text()]
    assert len(pages) == 1
    text = pages[0].read_text()
    images = re.findall(r'src="img/([^"]+growth[^"]+)"', text)
    assert len(images) == 4 and all((pages[0].parent / "img" / f).is_file() for f in images)
    assert "1.00" in text and "least-squares slope" in text
