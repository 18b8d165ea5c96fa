"""Codebook diagnostics: known cases of the pure functions, and the sub-space hook of every
product-code quantizer checked on real data (siftsmall)."""
import numpy as np
import pytest

from benchpq import registry
from benchpq.checks import InputError
from benchpq.datasets import read_vecs
from benchpq.measure import diagnostics, metrics


def test_uniform_codes_give_log2_ks_bits_and_full_usage():
    Ks, M = 16, 3
    codes = np.tile(np.arange(Ks), 5)[:, None].repeat(M, axis=1)   # every codeword 5 times
    out = diagnostics.codeword_usage(diagnostics.code_counts(codes, Ks))
    assert out["code_entropy_bits"] == pytest.approx([4.0] * M, abs=1e-12)
    assert out["code_entropy_mean_bits"] == pytest.approx(4.0, abs=1e-12)
    assert out["code_entropy_efficiency"] == pytest.approx(1.0, abs=1e-12)
    assert out["codeword_usage"] == [1.0] * M and out["codeword_usage_min"] == 1.0


def test_a_single_used_codeword_gives_zero_bits():
    codes = np.zeros((100, 2), np.uint8)
    codes[:, 1] = np.repeat([0, 1], 50)                # second sub-space: two codewords, 1 bit
    out = diagnostics.codeword_usage(diagnostics.code_counts(codes, 256))
    assert out["code_entropy_bits"] == pytest.approx([0.0, 1.0], abs=1e-12)
    assert out["codeword_usage"] == pytest.approx([1 / 256, 2 / 256])
    assert out["codeword_usage_min"] == pytest.approx(1 / 256)
    assert out["code_entropy_min_bits"] == 0.0


def test_entropy_of_a_skewed_assignment():
    counts = np.array([[3, 1, 0, 0]])                   # p = 3/4, 1/4
    expected = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert diagnostics.entropy_bits(counts)[0] == pytest.approx(expected, rel=1e-12)


def test_subspace_mse_sums_to_the_total_mse():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 12)).astype(np.float32)
    x_hat = (x + rng.normal(scale=0.3, size=x.shape)).astype(np.float32)
    out = diagnostics.subspace_mse(x, x_hat, diagnostics.equal_bounds(12, 4))
    assert len(out["subspace_mse"]) == 4
    assert out["subspace_mse_sum"] == pytest.approx(metrics.mse(x, x_hat), rel=1e-6)
    # in a rotated frame the split changes, the sum does not (orthogonal map)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    rotated = diagnostics.subspace_mse(x @ q, x_hat @ q, diagnostics.equal_bounds(12, 3))
    assert rotated["subspace_mse_sum"] == pytest.approx(metrics.mse(x, x_hat), rel=1e-5)


def test_subspace_mse_locates_the_error():
    x = np.zeros((10, 8), np.float32)
    x_hat = x.copy()
    x_hat[:, 2:4] = 1.0                                  # error 2 per vector, all in block 1
    out = diagnostics.subspace_mse(x, x_hat, [0, 2, 4, 8])
    assert out["subspace_mse"] == [0.0, 2.0, 0.0]
    assert out["subspace_mse_max"] == 2.0 and out["subspace_mse_min"] == 0.0
    assert out["subspace_mse_imbalance"] == pytest.approx(3.0)


def test_cluster_sizes_known_case():
    labels = np.array([0, 0, 0, 1, 3, 3])                # sizes 3, 1, 0, 2
    out = diagnostics.cluster_sizes(labels, 4)
    assert (out["cluster_size_min"], out["cluster_size_median"], out["cluster_size_max"],
            out["empty_clusters"]) == (0, 1.5, 3, 1)
    assert out["empty_clusters"] == metrics.empty_clusters(labels, 4)
    assert out["cluster_size_cv"] == pytest.approx(np.std([3, 1, 0, 2]) / 1.5)
    balanced = diagnostics.cluster_sizes(np.repeat(np.arange(4), 5), 4)
    assert balanced["cluster_balance"] == pytest.approx(1.0) and balanced["cluster_size_cv"] == 0


@pytest.mark.parametrize("call, message", [
    (lambda: diagnostics.code_counts(np.array([[0, 16]]), 16), "values must be in"),
    (lambda: diagnostics.code_counts(np.zeros((3, 2), np.float32), 16), "integer"),
    (lambda: diagnostics.subspace_mse(np.zeros((2, 8)), np.zeros((2, 8)), [0, 4, 3]),
     "increase"),
    (lambda: diagnostics.subspace_mse(np.zeros((2, 8)), np.zeros((2, 8)), [0, 4, 9]),
     "at most the dimension"),
    (lambda: diagnostics.subspace_mse(np.zeros((2, 8)), np.zeros((3, 8)), [0, 8]), "shape"),
    (lambda: diagnostics.equal_bounds(10, 4), "do not divide"),
    (lambda: diagnostics.cluster_sizes(np.array([0, 5]), 3), "labels"),
    (lambda: diagnostics.codeword_usage(np.zeros((0, 4))), "M >= 1"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(InputError, match=message):
        call()


# -- the quantizers' sub-space hook, on real data --------------------------------------
SMALL = {  # small codebooks so that every quantizer trains in well under a second
    "pq": dict(M=8, Ks=16, iter=10), "opq": dict(M=8, Ks=16, niter=5, niter_pq_0=5, iter=10),
    "lopq": dict(V=4, M=8, Ks=16, iter=10, coarse_iter=10, quota=100, init="random"),
    "faiss_pq": dict(M=8, nbits=4), "faiss_opq": dict(M=8, nbits=4, niter=5),
    "faiss_ivfpq": dict(M=8, nbits=4, nlist=8, nprobe=2), "faiss_pqfs": dict(M=8, nbits=4),
    "faiss_imi": dict(M=8, nbits=4, coarse_bits=2),
    "nanopq_pq": dict(M=8, Ks=16, iter=10), "nanopq_opq": dict(M=8, Ks=16, iter=5,
                                                              rotation_iter=2),
}


@pytest.fixture(scope="module")
def sift2k(siftsmall_dir):
    return np.ascontiguousarray(read_vecs(siftsmall_dir / "siftsmall_base.fvecs")[:2000])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_subspace_hook_of_each_quantizer(name, sift2k):
    """The view of a reconstruction is, block by block, a function of that block's sub-code
    (one codeword per sub-code value), and the blocks' mse add up to the run's mse."""
    plugin = registry.create({"name": name, "seed": 1, **SMALL[name]})
    plugin.set_threads(1)  # OpenMP threads spinning on a busy machine cost more than they save
    plugin.fit(sift2k)
    codes = plugin.encode(sift2k)
    sub_codes, Ks = plugin.subspace_codes(codes)
    assert sub_codes.shape == (2000, 8) and Ks == 16
    view_hat, bounds = plugin.subspace_view(plugin.decode(codes), codes)
    assert list(bounds) == list(range(0, 129, 16))
    for m in range(8):
        block = view_hat[:, bounds[m]:bounds[m + 1]]
        order = np.argsort(sub_codes[:, m], kind="stable")
        starts = np.flatnonzero(np.diff(sub_codes[order, m], prepend=-1))
        codeword = np.repeat(block[order[starts]], np.diff(np.append(starts, 2000)), axis=0)
        np.testing.assert_allclose(block[order], codeword, atol=1e-2 * np.abs(block).max())
    out = diagnostics.quantizer_diagnostics(plugin, sift2k, codes, chunk_rows=700)
    mse = metrics.mse(sift2k, plugin.decode(codes))
    assert out["subspace_mse_sum"] == pytest.approx(mse, rel=1e-3)
    assert 0 < out["code_entropy_mean_bits"] <= 4 and 0 < out["codeword_usage_min"] <= 1


def test_plugins_without_product_codes_are_skipped(sift2k):
    from benchpq.api import Quantizer

    class Identity(Quantizer):
        name = "identity"

        def decode(self, codes):
            return codes

    assert not diagnostics.has_subspaces(Identity())
    assert diagnostics.quantizer_diagnostics(Identity(), sift2k, sift2k) == {}


# -- benchpq-report --diagnostics ----------------------------------------------------------
def _record(rid, algorithm, task, params, seed, metrics_):
    return {"run_id": rid, "status": "ok", "message": "", "algorithm": algorithm,
            "dataset": "siftsmall", "task": task, "params": params, "seed": seed, "threads": 1,
            "metrics": metrics_, "config": {"name": "sweep"}, "provenance": {}, "wall_s": 1.0}


@pytest.fixture
def diagnostic_records(tmp_path):
    """Search runs of two quantizers at M = 4 and 8 over 2 seeds, and two clustering runs."""
    from benchpq.store.records import record_path, write_record
    sweep = tmp_path / "sweep"
    rng = np.random.default_rng(0)
    n = 0
    for algorithm in ("pq", "opq"):
        for M in (4, 8):
            for seed in (0, 1):
                codes = rng.integers(0, 16 if algorithm == "pq" else 256, (1000, M))
                x = rng.normal(size=(50, 8 * M))
                out = {**diagnostics.codeword_usage(diagnostics.code_counts(codes, 256)),
                       **diagnostics.subspace_mse(x, x * 0.9, diagnostics.equal_bounds(8 * M, M))}
                n += 1
                write_record(record_path(sweep, f"r{n}"),
                             _record(f"r{n}", algorithm, "search", {"M": M}, seed, out))
    for algorithm in ("kmeans", "pqkmeans"):
        n += 1
        labels = rng.integers(0, 20 if algorithm == "kmeans" else 10, 500)
        write_record(record_path(sweep, f"r{n}"), _record(
            f"r{n}", algorithm, "cluster", {}, 0, diagnostics.cluster_sizes(labels, 20)))
    return sweep


def test_report_cli_writes_the_diagnostics_png(diagnostic_records, tmp_path, capsys):
    from benchpq.report import load_records
    from benchpq.report.cli import main
    from benchpq.report.diagnostics_plot import subspace_series
    runs = load_records(diagnostic_records)
    series = subspace_series(runs, "codeword_usage")
    assert sorted(series) == ["opq, M=4", "opq, M=8", "pq, M=4", "pq, M=8"]
    assert series["pq, M=4"] == pytest.approx([16 / 256] * 4)      # 16 of 256 codewords used
    out = tmp_path / "figs" / "diag.png"
    assert main([str(diagnostic_records), "--diagnostics", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert "wrote" in capsys.readouterr().err


def test_report_cli_diagnostics_without_any_is_an_error(tmp_path, capsys):
    from benchpq.report.cli import main
    from benchpq.store.records import record_path, write_record
    sweep = tmp_path / "sweep"
    write_record(record_path(sweep, "a"), _record("a", "pq", "search", {"M": 8}, 0,
                                                  {"recall@10": 0.5}))
    assert main([str(sweep), "--diagnostics", str(tmp_path / "d.png")]) == 2
    assert "no run recorded diagnostics" in capsys.readouterr().err
    assert not (tmp_path / "d.png").exists()
