"""Results of the C++-backed plugins on seeded generated data, for the identity test.

:func:`compute` runs each plugin (looked up by its registry name, so the test does not
depend on module paths) on a seeded Gaussian mixture and returns the arrays that define
its behaviour: codes, reconstruction mse, search ids and distances, cluster labels.
``python -m tests.golden.native_results`` records them in ``native_results.npz`` beside
this file (on the scalar path: ``BENCHPQ_SIMD=scalar``; every path gives the same bits);
record only from code whose results are known to be right, since the test holds every
later version to them.

Where numpy's BLAS is in the loop (OPQ rotates every vector by a float32 product, ITQ
projects by a rotation from an SVD), a CPU with other BLAS kernels may round differently
in the last bits. For those, :func:`compute` also returns ``margin.<key>``: how close each
discrete output was to going the other way (a code to its runner-up codeword, an id to the
next distance, a bit to zero), which the test uses to tell a rounding flip from a change.
Margins are not recorded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).with_name("native_results.npz")


def mixture(n: int, d: int, seed: int) -> np.ndarray:
    """(n, d) float32 Gaussian mixture of 16 clusters (distinct distances, few exact ties)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (16, d))
    return (centres[rng.integers(0, 16, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def _mse(x: np.ndarray, q) -> float:
    return float(np.mean(np.sum((x - q.decode(q.encode(x))) ** 2, axis=1), dtype=np.float64))


def _quantizer(out: dict, key: str, q, x: np.ndarray, queries: np.ndarray, k: int = 10) -> None:
    q.fit(x)
    out[f"{key}.codes"] = q.encode(x)
    out[f"{key}.mse"] = np.float64(_mse(x, q))
    q.add(x)
    distances, ids = q.search(queries, k)
    out[f"{key}.ids"] = ids
    out[f"{key}.distances"] = distances


def _code_margins(sub_vectors: np.ndarray, codewords: np.ndarray) -> np.ndarray:
    """(n, M) relative gap between the nearest and the second nearest codeword of each
    sub-vector: (d2 - d1) / d2, d the squared distances; sub_vectors (n, M, dsub)."""
    d = np.einsum("nmd,nmd->nm", sub_vectors, sub_vectors)[:, :, None] \
        - 2 * np.einsum("nmd,mkd->nmk", sub_vectors, codewords) \
        + np.einsum("mkd,mkd->mk", codewords, codewords)[None]
    two = np.sort(d.astype(np.float64), axis=2)[:, :, :2]
    return (two[:, :, 1] - two[:, :, 0]) / np.maximum(two[:, :, 1], 1e-30)


def _rank_margins(distances: np.ndarray) -> np.ndarray:
    """(nq, k) relative gap of each ranked distance to its nearest neighbour in the ranking."""
    d = distances.astype(np.float64)
    gaps = np.full(d.shape, np.inf)
    step = np.diff(d, axis=1)
    gaps[:, 1:] = np.minimum(gaps[:, 1:], step)
    gaps[:, :-1] = np.minimum(gaps[:, :-1], step)
    return gaps / np.maximum(np.abs(d), 1e-30)


def _margins(out: dict, x64: np.ndarray, q64: np.ndarray, opq, itq) -> None:
    """margin.* of the BLAS-dependent discrete outputs (see the module doc)."""
    rotated = (x64.astype(np.float64) @ opq.rotation.astype(np.float64))
    M, Ks, dsub = opq.pq.codewords.shape
    out["margin.opq_m8.codes"] = _code_margins(rotated.reshape(len(x64), M, dsub),
                                               opq.pq.codewords.astype(np.float64))
    out["margin.opq_m8.ids"] = _rank_margins(out["opq_m8.distances"])
    z = (x64.astype(np.float64) - itq.mean) @ itq.projection.astype(np.float64)
    out["margin.itq.codes"] = np.abs(z) / np.abs(z).max(axis=1, keepdims=True)


def compute() -> dict[str, np.ndarray]:
    """name -> array for every plugin covered (about 20 s on two cores)."""
    from benchpq import registry

    x32, x64 = mixture(5000, 32, 1), mixture(5000, 64, 2)
    q32, q64 = mixture(50, 32, 3), mixture(50, 64, 4)
    make = registry.get
    out: dict[str, np.ndarray] = {}
    _quantizer(out, "pq_m8", make("pq")(M=8, Ks=256, iter=10, seed=5), x32, q32)
    _quantizer(out, "pq_m4_ks4096", make("pq")(M=4, Ks=4096, iter=3, seed=6), x32, q32)
    opq = make("opq")(M=8, Ks=256, niter=4, iter=5, seed=7)
    _quantizer(out, "opq_m8", opq, x64, q64)
    _quantizer(out, "lopq_m8", make("lopq")(V=8, M=8, Ks=256, quota=2000, coarse_iter=10,
                                            iter=10, seed=8), x64, q64)
    _quantizer(out, "lopq_m4_random", make("lopq")(V=16, M=4, Ks=64, quota=500, coarse_iter=10,
                                                   iter=10, init="random", seed=9), x32, q32)
    itq = make("itq")(num_bit=64, niter=20, seed=10).fit(x64)
    out["itq.codes"] = itq.encode(x64)
    _margins(out, x64, q64, opq, itq)
    out["pqkmeans.labels"] = make("pqkmeans")(M=8, Ks=256, encoder_iter=10, train_size=None,
                                              niter=10, seed=11).fit_predict(x32, 20)
    out["pqkmeans_library.labels"] = make("pqkmeans")(
        M=8, Ks=256, encoder_iter=10, train_size=None, niter=10, init="pqkmeans", empty="keep",
        seed=12).fit_predict(x32, 20)
    out["bkmeans.labels"] = make("bkmeans")(num_bit=32, itq_iter=10, train_size=None, niter=10,
                                            seed=13).fit_predict(x32, 20)
    out["bkmeans_random.labels"] = make("bkmeans")(num_bit=32, itq_iter=10, train_size=None,
                                                   niter=10, init="random",
                                                   seed=14).fit_predict(x32, 20)
    for init in ("k-means++", "random"):
        out[f"kmeans_{init}.labels"] = make("kmeans")(niter=10, init=init, seed=15) \
            .fit_predict(x32, 20)
    return {key: np.asarray(value) for key, value in out.items()}


if __name__ == "__main__":
    np.savez_compressed(GOLDEN, **{key: value for key, value in compute().items()
                                   if not key.startswith("margin.")})
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
