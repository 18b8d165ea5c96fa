"""The native layer's public surface: mode numbers defined once (cpp/modes.h), the internals
kept out of cppyy's view, every header in the build key, greedy k-means++ as a k-means init."""
import shutil

import numpy as np
import pytest

from benchpq import native


@pytest.fixture(scope="module")
def ns():
    return native.load()


def modes() -> dict[str, int]:
    return native._enum_values(native.source_dir() / native.MODES_HEADER)


def test_python_reads_every_mode_the_library_defines(ns):
    values = modes()
    assert {"KMEANS_INIT_GIVEN", "CODE_KMEANS_EMPTY_KEEP", "PQFS_SIMD_AUTO"} <= set(values)
    for name, value in values.items():
        assert native.enum_value(name) == value == int(getattr(ns, name)), name


def test_mode_values_are_unique_across_concepts():
    values = list(modes().values())
    assert len(values) == len(set(values))


def test_unknown_enumerator_is_named():
    with pytest.raises(KeyError, match="KMEANS_INIT_BOGUS is not an enumerator of modes.h"):
        native.enum_value("KMEANS_INIT_BOGUS")


def test_a_mode_of_another_concept_is_rejected(ns):
    x = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    centroids = np.zeros((2, 2), np.float32)
    with pytest.raises(Exception, match="unknown init"):
        ns.kmeans(x, 20, 2, 2, 1, native.enum_value("CODE_KMEANS_INIT_DISTINCT"), 0, 0, centroids,
                  np.zeros(1))
    codes, labels = np.array([[0], [255]], np.uint8), np.zeros(2, np.int64)
    with pytest.raises(Exception, match="unknown empty"):
        ns.bkmeans(codes, 2, 1, 2, 1, native.enum_value("CODE_KMEANS_INIT_DISTINCT"),
                   native.enum_value("KMEANS_INIT_RANDOM"), 0, np.zeros((2, 1), np.uint8), labels,
                   np.zeros(1), np.zeros(1))


def test_internals_are_not_exposed(ns):
    assert hasattr(ns, "ProductQuantizer") and hasattr(ns, "greedy_kmeanspp")
    for internal in ("TopK", "splitmix64", "code_kmeans", "reseed_empty_clusters", "adc"):
        assert not hasattr(ns, internal), internal
    include = native.build().parent / "include"
    assert (include / "pq.h").is_file() and (include / "internal" / "topk.h").is_file()


def test_build_key_covers_headers_in_subfolders(tmp_path):
    src = tmp_path / "cpp"
    shutil.copytree(native.source_dir(), src)
    sources, headers = native._files(src)
    assert src / "internal" / "nearest.cpp" in sources
    assert src / "internal" / "topk.h" in headers
    before = native.build_key(src)
    with open(src / "internal" / "topk.h", "a") as f:
        f.write("// changed\n")
    assert native.build_key(src) != before


def test_greedy_plusplus_is_a_kmeans_init(ns):
    """On 16 well separated clusters, greedy k-means++ seeds one centroid per cluster (the
    first objective is the within-cluster scatter), where random points leave some out."""
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 20, (16, 8))
    x = (centres[rng.permutation(np.arange(4000) % 16)] + rng.normal(0, 1, (4000, 8))) \
        .astype(np.float32)
    objective = {}
    for init in ("KMEANS_INIT_GREEDY_PLUSPLUS", "KMEANS_INIT_RANDOM"):
        centroids, obj = np.zeros((16, 8), np.float32), np.zeros(5)
        ran = ns.kmeans(x, 4000, 8, 16, 5, native.enum_value(init), 7, 0, centroids, obj)
        assert 1 <= ran <= 5 and np.all(np.diff(obj[:ran]) <= 0)
        objective[init] = obj[0]
    # a seed drawn from its cluster is 2 d sigma^2 = 16 from its points on average
    assert objective["KMEANS_INIT_GREEDY_PLUSPLUS"] < 1.5 * 16 * 4000
    assert objective["KMEANS_INIT_GREEDY_PLUSPLUS"] < objective["KMEANS_INIT_RANDOM"]
