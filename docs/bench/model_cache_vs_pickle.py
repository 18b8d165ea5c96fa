"""Store and load times of the model cache against the pickle files it replaced, in one run.

Builds our PQ (M=8, Ks=256) on calibrated_sift1m (100k learn, 1M base codes), then times,
alternating, ``rounds`` times each: the cache's store (arrays, JSON, seal, fsync) and load
(seal checked, arrays read without pickle), and the former cache's store and load
(model.pkl and build.json fsynced in a folder renamed into place; build.json and the
pickle read back). Prints the medians and their ratios.

    python3 docs/bench/model_cache_vs_pickle.py [rounds]
"""
import json
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchpq import registry
from benchpq.datasets import load_dataset
from benchpq.store.model_cache import ModelCache


def pickle_store(plugin, build: dict, root: Path, key: str) -> None:
    """The former cache's store: model.pkl and build.json, fsynced, in a temporary folder
    renamed into place."""
    payload = pickle.dumps(plugin, protocol=pickle.HIGHEST_PROTOCOL)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    for name, data in (("model.pkl", payload),
                       ("build.json", json.dumps({**build, "stored_at": time.time()},
                                                 sort_keys=True).encode())):
        with open(tmp / name, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    os.rename(tmp, root / key)


def pickle_load(root: Path, key: str):
    """The former cache's load: build.json, then the pickle."""
    build = json.loads((root / key / "build.json").read_text())
    with open(root / key / "model.pkl", "rb") as f:
        return pickle.load(f), build


def main(rounds: int = 7) -> None:
    ds = load_dataset({"loader": "calibrated", "name": "calibrated_sift1m", "n_learn": 100_000,
                       "n_base": 1_000_000, "n_query": 1000, "groundtruth_k": None})
    plugin = registry.create({"name": "pq", "M": 8, "Ks": 256, "seed": 0})
    plugin.fit(ds.learn)
    plugin.add(ds.base)
    work = Path(tempfile.mkdtemp(prefix="bpq-cache-io-"))
    times = {"cache store": [], "cache load": [], "pickle store": [], "pickle load": []}
    try:
        cache = ModelCache(work / "models")
        for r in range(rounds):
            key = f"{r:024d}"
            t0 = time.perf_counter()
            cache.store(key, plugin, {"train_s": 1.0})
            times["cache store"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            loaded, _ = cache.load(key, type(plugin))
            times["cache load"].append(time.perf_counter() - t0)
            assert (loaded.codes == plugin.codes).all()
            old = work / "pickles"
            old.mkdir(exist_ok=True)
            t0 = time.perf_counter()
            pickle_store(plugin, {"train_s": 1.0}, old, key)
            times["pickle store"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pickle_load(old, key)
            times["pickle load"].append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"codes: {plugin.codes.shape} {plugin.codes.dtype} ({plugin.codes.nbytes / 1e6:.1f} MB),"
          f" {rounds} rounds, medians:")
    for what in ("store", "load"):
        new, old = median[f"cache {what}"], median[f"pickle {what}"]
        print(f"  {what}: cache {new * 1e3:.1f} ms, pickle {old * 1e3:.1f} ms, "
              f"ratio {new / old:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
