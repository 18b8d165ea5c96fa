"""faiss inverted multi-index adapter (plugin ``faiss_imi``): the plugin contract, the
candidate budget (max_codes, nprobe) and its statistics, and bad input at the door."""
import pickle
from pathlib import Path

import faiss
import numpy as np
import pytest
import yaml

from benchpq import registry
from benchpq.algorithms.adapters.faiss_imi import FaissIMI, search_with_stats
from benchpq.api import Quantizer, Searcher
from benchpq.checks import InputError
from benchpq.measure import metrics

CONF = Path(__file__).resolve().parents[1] / "conf" / "algorithm"


@pytest.fixture(scope="module")
def clustered():
    """6000 x 32 float32 Gaussian mixture (20 clusters) and 40 queries."""
    rng = np.random.default_rng(21)
    centres = rng.normal(0, 4, (20, 32))
    x = (centres[rng.integers(0, 20, 6040)] + rng.normal(0, 1, (6040, 32))).astype(np.float32)
    return x[:6000], x[6000:]


@pytest.fixture(scope="module")
def imi(clustered):
    x, _ = clustered
    plugin = FaissIMI(M=8, nbits=6, coarse_bits=3, max_codes=500, seed=2).fit(x)
    plugin.add(x)
    return plugin


def test_plugin_is_registered_and_configured():
    assert registry.get("faiss_imi") is FaissIMI
    assert issubclass(FaissIMI, Quantizer) and issubclass(FaissIMI, Searcher)
    plugin = registry.create(yaml.safe_load((CONF / "faiss_imi.yaml").read_text()))
    assert plugin.factory == "IMI2x4,PQ8x8" and plugin.ncells == 256


def test_contract_and_sizes(imi, clustered):
    x, q = clustered
    index = faiss.extract_index_ivf(imi.index)
    assert isinstance(faiss.downcast_index(index.quantizer), faiss.MultiIndexQuantizer)
    assert index.nlist == 64
    codes = imi.encode(x[:300])
    assert codes.dtype == np.uint8 and codes.shape == (300, 1 + 6)  # list number, 48-bit PQ
    total_variance = float(((x - x.mean(0)) ** 2).sum(1).mean())
    assert metrics.mse(x[:300], imi.decode(codes)) < 0.1 * total_variance
    distances, ids = imi.search(q, 10)
    assert distances.shape == ids.shape == (40, 10) and ids.min() >= 0
    assert np.all(np.diff(distances, axis=1) >= -1e-3)
    assert imi.code_bits == 48 and imi.codes_bytes == 6000 * (6 + 8)
    assert imi.model_bytes == 8 * 64 * 4 * 4 + 8 * 32 * 4
    extra = imi.extra_metrics()
    assert extra["cell_bits"] == 6 and extra["total_bits"] == 54
    assert extra["cells_probed_max"] == 64


def test_max_codes_is_the_candidate_budget(imi, clustered):
    x, q = clustered
    imi.search(q, 10)
    assert imi.last_search["mean_candidates"] == 500  # faiss cuts the last list
    imi.set_search_params(max_codes=0)
    try:
        imi.search(q, 10)
        assert imi.last_search["mean_candidates"] == len(x)  # every cell, every code
        imi.set_search_params(nprobe=1)
        imi.search(q, 10)
        assert imi.last_search["mean_lists"] <= 1
        assert imi.last_search["mean_candidates"] < 0.2 * len(x)
    finally:
        imi.set_search_params(max_codes=500, nprobe=64)
    with pytest.raises(TypeError, match="no search parameters"):
        imi.set_search_params(quota=3)


def test_search_with_stats_counts_ivf_scans(clustered):
    x, q = clustered
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(32), 32, 16)
    index.train(x)
    index.add(x)
    index.nprobe = 16
    _, ids, stats = search_with_stats(index, q, 5)
    assert ids.shape == (40, 5) and stats["mean_candidates"] == len(x)
    assert stats["mean_lists"] == 16


def test_pickle_round_trip(imi, clustered):
    _, q = clustered
    clone = pickle.loads(pickle.dumps(imi))
    for a, b in zip(clone.search(q, 5), imi.search(q, 5)):
        assert np.array_equal(a, b)


def test_bad_input(clustered):
    x, _ = clustered
    with pytest.raises(InputError, match=r"coarse_bits: must be \[1, 12\]"):
        FaissIMI(coarse_bits=0)
    with pytest.raises(InputError, match="max_codes: must be >= 1"):
        FaissIMI(max_codes=0)
    with pytest.raises(InputError, match=r"nprobe: must be \[1, 16\]"):
        FaissIMI(coarse_bits=2, nprobe=17)
    with pytest.raises(InputError, match="must be even"):
        FaissIMI(M=3, coarse_bits=2).fit(np.ascontiguousarray(x[:, :27]))
    with pytest.raises(InputError, match="M=5 does not divide the dimension D=32"):
        FaissIMI(M=5).fit(x)
    with pytest.raises(InputError, match=r"call fit\(\)"):
        FaissIMI().search(x[:2], 1)
    fitted = FaissIMI(M=4, nbits=4, coarse_bits=2).fit(x)
    fitted.add(x)
    with pytest.raises(InputError, match="k=6001 is larger than the database"):
        fitted.search(x[:2], 6001)
    with pytest.raises(InputError, match="query: dimension mismatch"):
        fitted.search(x[:2, :8], 1)
