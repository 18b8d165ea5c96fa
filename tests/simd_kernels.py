"""Every native kernel's outputs on data-free inputs of awkward shapes, for the SIMD-path test.

``python tests/simd_kernels.py OUT.npz`` computes them in the native build that
``BENCHPQ_SIMD`` (and ``BENCHPQ_OPENMP``) select and writes them, with the build's
SIMD level and OpenMP flag, to OUT.npz; :mod:`test_simd_paths` runs it once per path
and compares the files bit for bit. The inputs are seeded Gaussian data with
continuous values (so a change in the order of a sum shows), in shapes chosen to
reach every loop's remainder: M = 1, 3, 5, 8, 16, 64; sub-space widths below,
at and above one 8-float register; n not a multiple of any block; Ks = 16, 256,
4096 (uint16 codes). Two threads where the build has OpenMP.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (M, Ks, dsub) of the PQ cases: every M of the specification, register tails
#: (dsub 3, 5, 9, 17), uint16 codes (Ks = 4096)
PQ_CASES = [(1, 256, 17), (3, 256, 5), (5, 256, 9), (8, 256, 3), (16, 16, 5), (64, 16, 1),
            (8, 4096, 3), (3, 4096, 5)]
#: M of the nanopq drop-in's adist (numpy's pairwise order: < 8, <= 128, > 128 terms)
ADIST_M = [1, 3, 5, 8, 16, 64, 130]


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    """(n, d) float32, anisotropic (scales 0.5 .. 3), seeded."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d)).astype(np.float32)


def pq_outputs(out: dict) -> None:
    from benchpq.algorithms.own.pq import PQ
    for M, Ks, dsub in PQ_CASES:
        D = M * dsub
        n = Ks + 1003 if Ks > 256 else 2051
        x, q = gaussian(n, D, M + Ks), gaussian(37, D, M + Ks + 1)
        key = f"pq_M{M}_Ks{Ks}_d{dsub}"
        # one Lloyd iteration at Ks = 4096: the kernels are the same, the scalar path slow
        pq = PQ(M=M, Ks=Ks, iter=4 if Ks <= 256 else 1, seed=M, max_points_per_centroid=None,
                init="k-means++" if Ks <= 256 else "random").fit(x)
        codes = pq.encode(x)
        out[f"{key}.codewords"] = pq.codewords
        out[f"{key}.codes"] = codes
        out[f"{key}.decoded"] = pq.decode(codes)
        pq.add(x)
        out[f"{key}.adc.distances"], out[f"{key}.adc.ids"] = pq.search(q, 11)
        out[f"{key}.adc1.distances"], out[f"{key}.adc1.ids"] = pq.search(q[:1], 11)
        out[f"{key}.sdc.distances"], out[f"{key}.sdc.ids"] = pq.search_sdc(q, 7)
        out[f"{key}.ip.distances"], out[f"{key}.ip.ids"] = pq.search_by(q, 11, "ip")


def kmeans_outputs(out: dict) -> None:
    from benchpq.algorithms.own.kmeans import KMeans
    for d, k in ((3, 7), (13, 33), (64, 100)):
        x = gaussian(3001, d, d)
        for init in ("k-means++", "random"):
            km = KMeans(niter=6, init=init, seed=d)
            labels = km.fit_predict(x, k)
            key = f"kmeans_d{d}_k{k}_{init}"
            out[f"{key}.labels"] = labels
            out[f"{key}.centroids"] = km.centroids
            out[f"{key}.objective"] = np.asarray(km.objectives)


def opq_lopq_itq_outputs(out: dict) -> None:
    from benchpq.algorithms.own.itq import ITQ
    from benchpq.algorithms.own.lopq import LOPQ
    from benchpq.algorithms.own.opq import OPQ
    x, q = gaussian(2503, 40, 40), gaussian(29, 40, 41)
    opq = OPQ(M=5, Ks=64, niter=3, iter=4, seed=3).fit(x)
    out["opq.codes"] = opq.encode(x)
    out["opq.decoded"] = opq.decode(out["opq.codes"])
    opq.add(x)
    out["opq.distances"], out["opq.ids"] = opq.search(q, 9)
    for M in (4, 10):
        lopq = LOPQ(V=6, M=M, Ks=32, quota=300, coarse_iter=5, iter=5, seed=M).fit(x)
        codes = lopq.encode(x)
        out[f"lopq_M{M}.codes"] = codes
        out[f"lopq_M{M}.decoded"] = lopq.decode(codes)
        lopq.add(x)
        out[f"lopq_M{M}.distances"], out[f"lopq_M{M}.ids"] = lopq.search(q, 9)
        lopq.set_metric("ip")
        out[f"lopq_M{M}.ip.distances"], out[f"lopq_M{M}.ip.ids"] = lopq.search(q, 9)
    x, q = gaussian(2503, 72, 72), gaussian(29, 72, 73)
    for bits in (17, 64):
        itq = ITQ(num_bit=bits, niter=5, seed=bits).fit(x)
        out[f"itq_{bits}.codes"] = itq.encode(x)
        itq.add(x)
        out[f"itq_{bits}.distances"], out[f"itq_{bits}.ids"] = itq.search(q, 9)


def ilopq_outputs(out: dict) -> None:
    """I-LOPQ at D = 40 (rotations of 16-column tiles and a remainder), sub-spaces of 10
    and 8 floats, uint8 and uint16 codes, 29 queries (visits rotated 8 at a time and
    one by one), whole cells and exact budgets."""
    from benchpq.algorithms.own.ilopq import ILOPQ
    x, q = gaussian(2503, 40, 50), gaussian(29, 40, 51)
    for M, Ks in ((4, 32), (5, 300)):
        model = ILOPQ(nlist=7, M=M, Ks=Ks, local="opq", local_niter=2, iter=4, coarse_iter=4,
                      min_cell_rows=64 if Ks < 256 else 400, seed=M).fit(x)
        key = f"ilopq_M{M}_Ks{Ks}"
        codes = model.encode(x)
        out[f"{key}.codes"] = codes
        out[f"{key}.decoded"] = model.decode(codes)
        model.add(x)
        for name, setting in (("all", {"nprobe": None, "quota": None}),
                              ("nprobe3", {"nprobe": 3, "quota": None}),
                              ("quota700", {"nprobe": None, "quota": 700,
                                            "exact_quota": True})):
            model.set_search_params(**setting)
            out[f"{key}.{name}.distances"], out[f"{key}.{name}.ids"] = model.search(q, 9)
            model.set_metric("ip")
            out[f"{key}.{name}.ip.distances"], out[f"{key}.{name}.ip.ids"] = model.search(q, 9)
            model.set_metric("l2")


def pqfs_outputs(out: dict) -> None:
    from benchpq.algorithms.own.pqfs import PQFastScan, simd_supported
    for M in (2, 6, 16):
        x, q = gaussian(2051, 3 * M, M), gaussian(31, 3 * M, M + 1)
        fs = PQFastScan(M=M, iter=4, seed=M).fit(x)
        out[f"pqfs_M{M}.codes"] = fs.encode(x)
        fs.add(x)
        for level in ("scalar", "avx2", "avx512"):
            if not simd_supported(level):
                continue  # a build runs its own level's scan and the ones below it
            for k_factor, metric in ((1, "l2"), (4, "l2"), (1, "ip"), (4, "ip")):
                fs.set_search_params(k_factor=k_factor, simd=level)
                fs.set_metric(metric)
                d, i = fs.search(q, 10)
                key = f"pqfs_M{M}.k{k_factor}" + ("" if metric == "l2" else ".ip")
                if f"{key}.distances" in out:  # every scan of one build gives the same
                    assert np.array_equal(out[f"{key}.distances"], d), (key, level)
                    assert np.array_equal(out[f"{key}.ids"], i), (key, level)
                out[f"{key}.distances"], out[f"{key}.ids"] = d, i


def clustering_outputs(out: dict) -> None:
    from benchpq.algorithms.own.bkmeans import BKMeansClusterer
    from benchpq.algorithms.own.pqkmeans import PQKMeansClusterer
    x = gaussian(3001, 24, 24)
    for M, init in ((3, "pqkmeans"), (8, "random")):
        pk = PQKMeansClusterer(M=M, Ks=256, encoder_iter=4, train_size=None, niter=5, init=init,
                               seed=M)
        out[f"pqkmeans_M{M}.labels"] = pk.fit_predict(x, 21)
    x = gaussian(3001, 72, 72)
    for bits in (24, 64):
        bk = BKMeansClusterer(num_bit=bits, itq_iter=4, train_size=None, niter=5, seed=bits)
        out[f"bkmeans_{bits}.labels"] = bk.fit_predict(x, 21)


def adist_outputs(out: dict) -> None:
    from benchpq.algorithms.compat import nanopq_api
    rng = np.random.default_rng(7)
    for M in ADIST_M:
        for Ks in (16, 256, 4096):
            table = rng.normal(size=(M, Ks)).astype(np.float32)
            dtype = np.uint8 if Ks <= 256 else np.uint16
            codes = rng.integers(0, Ks, (4099, M)).astype(dtype)
            out[f"adist_M{M}_Ks{Ks}"] = nanopq_api.DistanceTable(table).adist(codes)


def rabitq_outputs(out: dict) -> None:
    """RaBitQ: D = 40, 72 (padded to 64, 128) and 128, bits 1, 3, 4, 8: codes, decodes,
    search results and the estimator on pairs."""
    from benchpq.algorithms.own.rabitq import RaBitQ
    for dim, bits in ((40, 1), (40, 3), (72, 1), (72, 8), (128, 4)):
        x, q = gaussian(1031, dim, dim + bits), gaussian(29, dim, dim + bits + 1)
        model = RaBitQ(bits=bits, seed=bits).fit(x)
        key = f"rabitq_d{dim}_b{bits}"
        codes = model.encode(x)
        out[f"{key}.codes"] = codes
        out[f"{key}.decoded"] = model.decode(codes)
        model.add(x)
        out[f"{key}.distances"], out[f"{key}.ids"] = model.search(q, 9)
        model.set_metric("ip")
        out[f"{key}.ip.distances"], out[f"{key}.ip.ids"] = model.search(q, 9)
        model.set_metric("l2")
        pairs = np.arange(29 * 7).reshape(29, 7) % 1031
        out[f"{key}.inner"] = model.estimates(q, pairs).inner


def compute() -> dict[str, np.ndarray]:
    """name -> array of every kernel output above, plus ``build.level`` and ``build.openmp``."""
    from benchpq import native
    ns = native.load()
    native.set_num_threads(2)
    out: dict[str, np.ndarray] = {}
    for part in (pq_outputs, kmeans_outputs, opq_lopq_itq_outputs, ilopq_outputs, pqfs_outputs,
                 clustering_outputs, adist_outputs, rabitq_outputs):
        part(out)
    out = {key: np.asarray(value) for key, value in out.items()}
    out["build.level"] = np.int64(ns.simd_level())
    out["build.openmp"] = np.bool_(ns.openmp_enabled())
    return out


if __name__ == "__main__":
    np.savez(sys.argv[1], **compute())
