"""Ratios of an algorithm's phase times to a baseline's, run under the same conditions."""
import pytest

from benchpq.report import ReportError, load_records, parse_baselines, with_ratios
from benchpq.report.cli import main
from benchpq.store.records import record_path, write_record


def record(rid, algorithm, M, threads, train_s, search_s, params=None):
    return {"run_id": rid, "status": "ok", "message": "", "algorithm": algorithm,
            "dataset": "toy", "task": "search", "seed": 0, "threads": threads,
            "params": {"M": M, **(params or {})},
            "metrics": {"train_s": train_s, "search_s": search_s, "recall@10": 0.9, "mse": 10.0}}


@pytest.fixture
def sweep(tmp_path):
    rows = [("a", "pq", 8, 1, 2.0, 1.0, {"Ks": 256}),
            ("b", "faiss_pq", 8, 1, 4.0, 2.0, {"nbits": 8}),
            ("c", "pq", 8, 2, 1.0, 0.5, {"Ks": 256}),
            ("d", "faiss_pq", 8, 2, 4.0, 1.0, {"nbits": 8}),
            ("e", "pq", 4, 1, 3.0, 3.0, {"Ks": 256}),
            ("f", "faiss_pq", 4, 1, 1.0, 1.0, {"nbits": 8})]
    for rid, *args in rows:
        write_record(record_path(tmp_path, rid), record(rid, *args))
    return tmp_path


def test_ratios_pair_runs_with_equal_threads_and_shared_params(sweep):
    df = with_ratios(load_records(sweep), {"pq": "faiss_pq"})
    got = {(r.M, r.threads): (r["train_s ratio"], r["search_s ratio"]) for _, r in df.iterrows()}
    assert got == {(8, 1): (0.5, 0.5), (8, 2): (0.25, 0.5), (4, 1): (3.0, 3.0)}
    assert set(df.baseline) == {"faiss_pq"}


def test_missing_baseline_runs_are_named(sweep):
    with pytest.raises(ReportError, match="no ok run of 'faiss_opq'"):
        with_ratios(load_records(sweep), {"pq": "faiss_opq"})
    with pytest.raises(ReportError, match="expected ALGORITHM=BASELINE"):
        parse_baselines(["pq"])


def test_cli_prints_the_ratio_table(sweep, capsys):
    assert main([str(sweep), "--baseline", "pq=faiss_pq"]) == 0
    out = capsys.readouterr().out
    assert "train_s ratio" in out and "search_s ratio" in out and "0.25" in out


def test_fixed_settings_may_differ_but_swept_params_must_match(tmp_path):
    """pq (iter=25) against nanopq_pq (iter=20): iter is a setting, M the swept variable."""
    runs = [("a", "pq", 4, 1.0, {"iter": 25}), ("b", "pq", 8, 2.0, {"iter": 25}),
            ("c", "nanopq_pq", 4, 10.0, {"iter": 20}), ("d", "nanopq_pq", 8, 40.0, {"iter": 20})]
    for rid, algorithm, M, train_s, params in runs:
        write_record(record_path(tmp_path, rid),
                     record(rid, algorithm, M, 1, train_s, 1.0, params))
    df = with_ratios(load_records(tmp_path), {"pq": "nanopq_pq"})
    assert dict(zip(df.M, df["train_s ratio"])) == {4: 0.1, 8: 0.05}
    assert "baseline" not in df.attrs.get("param_columns", [])


def write(folder, rec):
    write_record(record_path(folder, rec["run_id"]), rec)


def test_a_baseline_with_several_configurations_is_refused_unless_one_is_named(tmp_path):
    """Two faiss_pq runs under the same conditions that differ in nbits would be averaged
    into one denominator; naming one ('faiss_pq[nbits=8]') pairs with it alone."""
    write(tmp_path, record("ours", "pq", 8, 1, 2.0, 1.0))
    write(tmp_path, record("b8", "faiss_pq", 8, 1, 4.0, 1.0, params={"nbits": 8}))
    write(tmp_path, record("b4", "faiss_pq", 8, 1, 1.0, 1.0, params={"nbits": 4}))
    df = load_records(tmp_path)
    with pytest.raises(ReportError, match=r"faiss_pq paired with run ours differ in nbits"):
        with_ratios(df, parse_baselines(["pq=faiss_pq"]))
    (row,) = with_ratios(df, parse_baselines(["pq=faiss_pq[nbits=8]"])).to_dict("records")
    assert row["train_s ratio"] == 0.5 and row["baseline"] == "faiss_pq[nbits=8]"
