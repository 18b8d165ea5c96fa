"""Caches under concurrency: N processes ask for the same items at once on a cold cache.

Each process builds the native library (a small private source folder, so the
compile is short), loads a generated dataset cached on disk and its ground
truth. Each item must be produced by exactly one of them (counted from the
log lines the producers write), every process must succeed, and all must read
the same bytes as a direct, uncached computation.
"""
import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from benchpq.datasets import ground_truth
from benchpq.datasets.synthetic import generate

REPO = Path(__file__).resolve().parents[1]
PROCESSES = 4
DATASET = {"name": "cold", "loader": "synthetic_sift", "n_learn": 3000, "n_base": 20000,
           "n_query": 50, "dim": 32, "n_components": 8, "seed": 3, "cache_min_rows": 0,
           "groundtruth_k": 20}

WORKER = textwrap.dedent("""
    import hashlib, logging, sys, time
    from pathlib import Path
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    from benchpq import native
    from benchpq.datasets import load_dataset
    gate, ready, dataset = Path(sys.argv[1]), Path(sys.argv[2]), eval(sys.argv[3])
    ready.touch()
    while not gate.exists():  # every process is imported and waiting: start together
        time.sleep(0.005)
    library = native.build()
    ds = load_dataset(dataset)
    digest = hashlib.sha256()
    for part in (ds.learn, ds.base, ds.query, ds.groundtruth):
        digest.update(part.tobytes())
    print(library, digest.hexdigest())
""")


def _small_sources(folder: Path) -> Path:
    folder.mkdir()
    (folder / "tiny.h").write_text("namespace benchpq { int tiny(int x); }\n")
    (folder / "tiny.cpp").write_text('#include "tiny.h"\n'
                                     "namespace benchpq { int tiny(int x) { return 2 * x; } }\n")
    return folder


def _expected_digest() -> str:
    d = DATASET
    parts = {s: generate("sift", n, d["dim"], d["seed"], s, d["n_components"])
             for s, n in (("learn", d["n_learn"]), ("base", d["n_base"]), ("query", d["n_query"]))}
    ids, _ = ground_truth(parts["base"], parts["query"], d["groundtruth_k"], use_cache=False)
    digest = hashlib.sha256()
    for part in (parts["learn"], parts["base"], parts["query"], ids):
        digest.update(part.tobytes())
    return digest.hexdigest()


def test_cold_cache_items_are_built_once_by_concurrent_processes(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "BENCHPQ_CACHE": str(cache), "PYTHONPATH": str(REPO),
           "BENCHPQ_NATIVE_SRC": str(_small_sources(tmp_path / "cpp")), "OMP_NUM_THREADS": "1"}
    env.pop("BENCHPQ_DATA", None)
    env.pop("BENCHPQ_NATIVE_CACHE", None)  # the library too goes to this cold cache
    gate = tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(PROCESSES)]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(gate), str(r), repr(DATASET)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for r in ready]
    try:
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(r.exists() for r in ready), "the worker processes did not start"
        assert not cache.exists(), "a worker touched the cache before the start"
        gate.touch()
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    logs = "".join(err for _, err in outputs)
    assert logs.count("compiling 1 C++ sources") == 1, logs
    assert logs.count("computing ground truth") == 1, logs
    for split in ("learn", "base", "query"):
        assert logs.count(f"{split}-n{DATASET['n_' + split]}.npy") == 1, logs  # generated once

    results = {tuple(out.split()) for out, _ in outputs}
    assert len(results) == 1, results  # same library, same bytes in every process
    library, digest = results.pop()
    assert Path(library).is_file() and Path(library).parent.parent == cache / "native"
    assert digest == _expected_digest()
    leftovers = [p.name for p in cache.rglob("*") if ".tmp" in p.name or ".lock" in p.name]
    assert leftovers == []


MUTEX_WORKER = textwrap.dedent("""
    import os, sys, time
    from benchpq.store.cachefiles import entry_lock
    entry, journal = sys.argv[1], sys.argv[2]
    for _ in range(25):
        with entry_lock(entry):
            with open(journal, "a") as f:
                f.write(f"enter {os.getpid()}\\n")
            time.sleep(0.002)
            with open(journal, "a") as f:
                f.write(f"leave {os.getpid()}\\n")
""")


def test_entry_lock_admits_one_holder_at_a_time(tmp_path):
    """Removing the lock file on release must not let a waiter and a newcomer both in."""
    journal = tmp_path / "journal"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", MUTEX_WORKER, str(tmp_path / "entry"),
                               str(journal)], env=env) for _ in range(PROCESSES)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = journal.read_text().splitlines()
    assert len(lines) == 2 * 25 * PROCESSES
    for enter, leave in zip(lines[::2], lines[1::2]):
        assert enter.startswith("enter ") and leave == "leave " + enter.split()[1]
    assert list(tmp_path.glob(".*.lock")) == []


def test_a_failed_producer_leaves_no_entry_and_the_next_one_succeeds(tmp_path):
    from benchpq.store.cachefiles import entry_lock, write_atomic
    path = tmp_path / "entry.npy"

    def broken(tmp):
        np.save(tmp, np.arange(3))
        raise RuntimeError("killed mid-write")

    with entry_lock(path), pytest.raises(RuntimeError, match="mid-write"):
        write_atomic(path, broken, suffix=".npy")
    assert not path.exists() and list(tmp_path.glob("*.tmp*")) == []
    with entry_lock(path):
        write_atomic(path, lambda tmp: np.save(tmp, np.arange(4)), suffix=".npy")
    assert np.load(path).tolist() == [0, 1, 2, 3]


def test_an_unwritable_cache_still_gives_ground_truth(tmp_path):
    rng = np.random.default_rng(0)
    base, query = rng.random((500, 8), dtype=np.float32), rng.random((5, 8), dtype=np.float32)
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would be")
    ids, _ = ground_truth(base, query, 10, cache_dir=blocked)
    expected, _ = ground_truth(base, query, 10, use_cache=False)
    assert np.array_equal(ids, expected)
