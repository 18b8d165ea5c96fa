"""RaBitQ-Library's IVF index (plugin ``rabitqlib_ivf``): parameters checked at the door, the
library's saved bytes per vector and per model, padding of small dimensions, ids in order of
addition, missing results, pickling, and recall on siftsmall."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml
from optional import requires

rabitqlib = requires("rabitqlib")

from benchpq import registry  # noqa: E402
from benchpq.algorithms.adapters.rabitqlib_ivf import RaBitQLibIVF, padded_dim  # noqa: E402
from benchpq.api import Quantizer, Searcher  # noqa: E402
from benchpq.checks import InputError  # noqa: E402
from benchpq.measure import metrics  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf" / "algorithm"


def mixture(dim, n=3000, seed=5):
    """n x dim float32 Gaussian mixture (20 clusters)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (20, dim))
    return (centres[rng.integers(0, 20, n)] + rng.normal(0, 1, (n, dim))).astype(np.float32)


def make(**kw):
    nprobe = kw.pop("nprobe", 4)
    plugin = RaBitQLibIVF(**{"nlist": 16, "seed": 3, **kw})
    plugin.set_search_params(nprobe=nprobe)
    plugin.set_threads(1)
    return plugin


def saved_bytes(plugin, tmp_path):
    path = tmp_path / "index"
    plugin.index.save(str(path))
    return os.path.getsize(path)


def test_registered_and_configured():
    plugin = registry.create(yaml.safe_load((CONF / "rabitqlib_ivf.yaml").read_text()))
    assert isinstance(plugin, RaBitQLibIVF) and isinstance(plugin, Searcher)
    assert not isinstance(plugin, Quantizer)  # the library has no decoder
    assert (plugin.nbits, plugin.nlist, plugin.nprobe) == (4, 1024, 16)
    assert RaBitQLibIVF(nlist=1).nprobe == 1  # one cell: the flat index, searched whole


def test_bad_parameters_are_refused_naming_them():
    x = mixture(128, 500)
    for nbits in (0, 10, 32, 2.0):
        with pytest.raises(InputError, match="nbits"):
            make(nbits=nbits)
    with pytest.raises(InputError, match="nprobe"):
        make(nprobe=17)
    with pytest.raises(InputError, match=r"nlist k-means cells \(16\).*training vectors \(10\)"):
        make().fit(x[:10])
    with pytest.raises(InputError, match="threads"):
        make().set_threads(0)
    plugin = make()
    with pytest.raises(InputError, match="call fit"):
        plugin.add(x)
    plugin.fit(x)
    with pytest.raises(InputError, match="call fit|k="):
        plugin.search(x[:2], 1)  # nothing added: k=1 exceeds the empty database
    plugin.add(x)
    with pytest.raises(InputError, match="dimension mismatch"):
        plugin.add(x[:, :100])
    with pytest.raises(InputError, match="NaN"):
        plugin.search(np.full((1, 128), np.nan, np.float32), 5)
    with pytest.raises(InputError, match="k=501"):
        plugin.search(x[:2], 501)
    with pytest.raises(InputError, match="nprobe"):
        plugin.set_search_params(nprobe=0)
    with pytest.raises(TypeError, match="no search parameters"):
        plugin.set_search_params(qb=4)


@pytest.mark.parametrize("dim", [16, 100, 128])
@pytest.mark.parametrize("nbits", [1, 5])
def test_sizes_are_the_library_saved_bytes(dim, nbits, tmp_path):
    """codes_bytes grows by what the library's saved index grows (exactly: 1-bit codes and
    factors in blocks of 32 per cell, ids and extra bits per vector); the rest of the file
    is model_bytes plus 62 header bytes and 8 per cell."""
    x = mixture(dim)
    plugin = make(nbits=nbits).fit(x)
    plugin.add(x[:1000])
    sizes = [(saved_bytes(plugin, tmp_path), plugin.codes_bytes)]
    plugin.add(x[1000:])
    sizes.append((saved_bytes(plugin, tmp_path), plugin.codes_bytes))
    (stored_a, held_a), (stored_b, held_b) = sizes
    assert held_b - held_a == stored_b - stored_a
    assert stored_b - plugin.codes_bytes - plugin.model_bytes == 62 + 8 * plugin.nlist
    padded = padded_dim(dim)
    assert padded == {16: 64, 100: 128, 128: 128}[dim]
    assert plugin.code_bits == padded * nbits
    # at least the codes, ids and factors of each vector; at most 31 empty slots per cell
    each = padded * nbits // 8 + 16 + (8 if nbits > 1 else 0)
    assert each * len(x) <= plugin.codes_bytes <= each * len(x) + 16 * 31 * (padded // 8 + 12)


def test_ids_continue_in_order_of_addition_and_pickling_keeps_the_index():
    x = mixture(128)
    plugin = make(nbits=4).fit(x)
    for block in np.array_split(x, [700, 701, 2000]):  # uneven, one of a single row
        plugin.add(block)
    assert plugin.ntotal == len(x) == plugin.index.num_points
    distances, ids = plugin.search(x[::100], 5)
    np.testing.assert_array_equal(ids[:, 0], np.arange(0, len(x), 100))  # each finds itself
    assert ids.dtype == np.int64 and distances.dtype == np.float32
    assert np.all(np.diff(distances, axis=1) >= 0)
    copy = pickle.loads(pickle.dumps(plugin))
    copy_distances, copy_ids = copy.search(x[::100], 5)
    np.testing.assert_array_equal(copy_ids, ids)
    np.testing.assert_array_equal(copy_distances, distances)


def test_missing_results_are_minus_one():
    x = mixture(128)
    plugin = make(nbits=1, nprobe=1).fit(x)
    plugin.add(x)
    distances, ids = plugin.search(x[:3], 2000)  # one cell holds far fewer than 2000
    missing = ids == -1
    assert missing.any() and not missing[:, 0].any()
    assert np.all(np.isinf(distances[missing]))


def test_small_dimension_is_zero_padded():
    """d=16 vectors padded to the library's smallest dimension, 64: distances unchanged, so
    8-bit codes rank almost as exactly."""
    x = mixture(16)
    plugin = make(nbits=8, nprobe=16).fit(x)
    plugin.add(x)
    queries = x[:50] + np.float32(0.05)
    _, ids = plugin.search(queries, 10)
    exact = np.argsort(((queries[:, None] - x[None]) ** 2).sum(-1), axis=1)[:, :1]
    assert metrics.recall_at(ids, exact, 10) == 1.0


# (true nearest neighbour among the first 1 / 10 returned) on siftsmall, 100 queries, trained
# on the base, nlist 64; the library's rotation is drawn anew each build, five builds:
#   nbits 1, nprobe 16   0.60/0.96  0.64/0.99  0.68/0.99  0.60/0.98  0.59/0.97
#   nbits 1, nprobe 4    0.60/0.94  0.66/0.95  0.65/0.92  0.59/0.95  0.54/0.91
#   nbits 4, nprobe 16   0.93/1.00  0.97/1.00  0.91/1.00  0.93/1.00  0.94/1.00
#   nbits 4, nprobe 4    0.92/0.98  0.94/0.96  0.85/0.93  0.90/0.96  0.86/0.92
#   nbits 7, nprobe 16   1.00/1.00  1.00/1.00  0.98/1.00  0.99/1.00  0.99/1.00
@pytest.mark.parametrize("nbits, nprobe, floor_1, floor_10", [
    (1, 16, 0.45, 0.9), (1, 4, 0.45, 0.85), (4, 16, 0.85, 0.97), (4, 4, 0.8, 0.88),
    (7, 16, 0.95, 0.99)])
def test_recall_on_siftsmall(nbits, nprobe, floor_1, floor_10, siftsmall):
    base, queries, gt = siftsmall
    plugin = RaBitQLibIVF(nbits=nbits, nlist=64, seed=1)
    plugin.set_search_params(nprobe=nprobe)
    plugin.set_threads(1)
    plugin.fit(base)
    plugin.add(base)
    _, ids = plugin.search(queries, 10)
    assert metrics.recall_at(ids, gt, 1) >= floor_1
    assert metrics.recall_at(ids, gt, 10) >= floor_10
