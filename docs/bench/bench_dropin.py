"""The same user code with nanopq / pqkmeans and with our drop-ins: time and quality side by side.

    flock /tmp/benchpq-bench.lock python docs/bench/bench_dropin.py   # siftsmall, fashion-mnist
    python docs/bench/bench_dropin.py --datasets siftsmall --repeats 1   # a quick look

Each library runs the code of its README / tutorial, changing only what ``lib`` is:

* nanopq (``nanopq`` vs ``benchpq.algorithms.compat.nanopq_api``)::

      pq = lib.PQ(M=8, verbose=False).fit(learn)          # iter=20, seed=123, minit="points"
      codes = pq.encode(base)
      dists = pq.dtable(query).adist(codes_1m)            # 1M codes: base codes repeated
      opq = lib.OPQ(M=8, verbose=False).fit(learn)        # pq_iter=20, rotation_iter=10

  quality: mse of the base reconstructions (mean squared L2 per vector).
* pqkmeans (``pqkmeans`` vs ``benchpq.algorithms.compat.pqkmeans_api``)::

      encoder = lib.encoder.PQEncoder(num_subdim=4, Ks=256); encoder.fit(learn)
      codes = encoder.transform(base)
      labels = lib.clustering.PQKMeans(encoder=encoder, k=K, iteration=10).fit_predict(codes)
      itq = lib.encoder.ITQEncoder(num_bit=32); itq.fit(learn); bits = itq.transform(base)
      labels = lib.clustering.BKMeans(k=K, input_dim=32, iteration=10).fit_predict(bits)

  plus the library's PQKMeans on the drop-in's codes (the same work, the same labels).
  quality: clustering error (mean squared distance of each base vector to the mean of
  its cluster, :func:`benchpq.measure.metrics.clustering_error`).

Times are wall-clock seconds, the best of ``--repeats`` runs for encoding, search and
clustering (training once); speed-ups are ratios within this one run. ``--threads N`` sets
the OpenMP and BLAS threads of both libraries (default: every core, as each would use);
on a loaded machine 1 thread is the steadier comparison, since OpenMP barriers then wait
for descheduled threads. Writes ``<out>/dropin[-t<N>].json`` and ``.md`` and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
if "--threads" in sys.argv:  # before numpy and the OpenMP runtimes read them
    for var in THREAD_VARS:
        os.environ[var] = sys.argv[sys.argv.index("--threads") + 1]

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchpq.algorithms.compat import nanopq_api, pqkmeans_api  # noqa: E402
from benchpq.datasets.registry import load_dataset  # noqa: E402
from benchpq.measure import metrics  # noqa: E402

DATASETS = {  # name: (dataset config, learn rows, base rows, clusters)
    "siftsmall": ({"loader": "texmex", "name": "siftsmall", "folder": "siftsmall",
                   "prefix": "siftsmall", "learn": "base", "groundtruth_k": 0}, 10000, 10000,
                  100),
    "fashion-mnist": ({"loader": "fashion_mnist", "name": "fashion-mnist",
                       "groundtruth_k": 0}, 10000, 60000, 1000),
}
SEARCH_CODES = 1_000_000


def timed(fn, repeats: int = 1):
    """(best wall time in seconds over ``repeats`` calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def mse(x, recon) -> float:
    return metrics.mse(np.asarray(x, np.float32), np.asarray(recon, np.float32))


def bench_nanopq(lib, learn, base, queries, repeats: int, opq: bool) -> dict:
    row = {}
    row["pq_fit_s"], pq = timed(lambda: lib.PQ(M=8, verbose=False).fit(learn))
    row["pq_encode_s"], codes = timed(lambda: pq.encode(base), repeats)
    row["pq_mse"] = mse(base, pq.decode(codes))
    codes_1m = np.ascontiguousarray(np.resize(codes, (SEARCH_CODES, codes.shape[1])))

    def search():
        return [pq.dtable(q).adist(codes_1m) for q in queries]
    row["pq_search_1m_s_per_query"], dists = timed(search, repeats)
    row["pq_search_1m_s_per_query"] /= len(queries)
    row["pq_top10"] = np.argsort(dists[0], kind="stable")[:10].tolist()
    if opq:
        row["opq_fit_s"], model = timed(lambda: lib.OPQ(M=8, verbose=False).fit(learn))
        row["opq_encode_s"], codes = timed(lambda: model.encode(base), repeats)
        row["opq_mse"] = mse(base, model.decode(codes))
    return row


def bench_pqkmeans(lib, learn, base, k: int, repeats: int) -> dict:
    row = {}
    np.random.seed(0)
    encoder = lib.encoder.PQEncoder(num_subdim=4, Ks=256)
    row["pq_encoder_fit_s"], _ = timed(lambda: encoder.fit(learn))
    row["pq_transform_s"], codes = timed(lambda: encoder.transform(base), repeats)
    row["pqkmeans_s"], labels = timed(lambda: lib.clustering.PQKMeans(
        encoder=encoder, k=k, iteration=10).fit_predict(codes), repeats)
    row["pqkmeans_error"] = metrics.clustering_error(base, np.asarray(labels), k)
    itq = lib.encoder.ITQEncoder(num_bit=32)
    row["itq_fit_s"], _ = timed(lambda: itq.fit(learn))
    row["itq_transform_s"], bits = timed(lambda: itq.transform(base), repeats)
    row["bkmeans_s"], labels = timed(lambda: lib.clustering.BKMeans(
        k=k, input_dim=32, iteration=10).fit_predict(bits), repeats)
    row["bkmeans_error"] = metrics.clustering_error(base, np.asarray(labels), k)
    return row, encoder, codes


SPEEDUPS = [("nanopq", "pq_fit_s"), ("nanopq", "pq_encode_s"),
            ("nanopq", "pq_search_1m_s_per_query"), ("nanopq", "opq_fit_s"),
            ("nanopq", "opq_encode_s"), ("pqkmeans", "pq_encoder_fit_s"),
            ("pqkmeans", "pq_transform_s"), ("pqkmeans", "pqkmeans_s"),
            ("pqkmeans", "pqkmeans_same_codes_s"), ("pqkmeans", "itq_fit_s"),
            ("pqkmeans", "itq_transform_s"), ("pqkmeans", "bkmeans_s")]
QUALITY = [("nanopq", "pq_mse"), ("nanopq", "opq_mse"), ("pqkmeans", "pqkmeans_error"),
           ("pqkmeans", "bkmeans_error")]


def table(results: dict) -> str:
    lines = ["| dataset | measure | library | drop-in | library / drop-in |",
             "|---|---|---|---|---|"]
    for name, res in results.items():
        for part, key in SPEEDUPS + QUALITY:
            lib, ours = res[part]["library"].get(key), res[part]["dropin"].get(key)
            if lib is None or ours is None:
                continue
            lines.append(f"| {name} | {part} {key} | {lib:.4g} | {ours:.4g} | {lib / ours:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import nanopq
    import pqkmeans
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(REPO / "results" / "dropin"))
    args = parser.parse_args(argv)
    results = {}
    for name in args.datasets:
        cfg, n_learn, n_base, k = DATASETS[name]
        ds = load_dataset(cfg)
        learn = np.ascontiguousarray(ds.learn[:n_learn], np.float32)
        base = np.ascontiguousarray(ds.base[:n_base], np.float32)
        queries = np.ascontiguousarray(ds.query[:args.queries], np.float32)
        print(f"{name}: learn {learn.shape}, base {base.shape}, k={k}", flush=True)
        res = {"nanopq": {}, "pqkmeans": {}}
        for tag, lib in (("library", nanopq), ("dropin", nanopq_api)):
            res["nanopq"][tag] = bench_nanopq(lib, learn, base, queries, args.repeats,
                                              opq=name == "siftsmall")
            print(f"  nanopq {tag}: {res['nanopq'][tag]}", flush=True)
        encoders = {}
        for tag, lib in (("library", pqkmeans), ("dropin", pqkmeans_api)):
            res["pqkmeans"][tag], encoders[tag], _ = bench_pqkmeans(lib, learn, base, k,
                                                                   args.repeats)
            print(f"  pqkmeans {tag}: {res['pqkmeans'][tag]}", flush=True)
        # the same work: each library's PQKMeans on the drop-in encoder's codes
        codes = encoders["dropin"].transform(base)
        labels = {}
        for tag, lib in (("library", pqkmeans), ("dropin", pqkmeans_api)):
            res["pqkmeans"][tag]["pqkmeans_same_codes_s"], labels[tag] = timed(
                lambda lib=lib, encoder=encoders["dropin"], k=k, codes=codes:
                lib.clustering.PQKMeans(encoder=encoder, k=k, iteration=10).fit_predict(codes),
                args.repeats)
        res["pqkmeans"]["same_codes_same_labels"] = labels["library"] == labels["dropin"]
        results[name] = res
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "nanopq": nanopq.__version__, "load_average": os.getloadavg(),
            "threads": args.threads or os.cpu_count(),
            "repeats": args.repeats, "queries": args.queries}
    stem = "dropin" + (f"-t{args.threads}" if args.threads else "")
    (out / f"{stem}.json").write_text(json.dumps({"info": info, "results": results}, indent=1))
    text = table(results)
    (out / f"{stem}.md").write_text(text + "\n")
    print(text)
    for name, res in results.items():
        print(f"{name}: the library's PQKMeans and ours on the same codes give the same labels: "
              f"{res['pqkmeans']['same_codes_same_labels']}")
    print(f"load average {info['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
