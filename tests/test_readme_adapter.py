"""The adapter example of docs/plugins.md is the shipped faiss_lsh adapter, and it works."""
import re
from pathlib import Path

import numpy as np

from benchpq import registry

ROOT = Path(__file__).resolve().parent.parent


def docs_block(heading: str, language: str) -> str:
    section = ROOT.joinpath("docs", "plugins.md").read_text().split(f"## {heading}\n", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def test_the_docs_show_the_shipped_adapter_and_yaml():
    shipped = ROOT / "algorithms" / "adapters" / "faiss_lsh.py"
    assert docs_block("Writing an adapter", "python") == shipped.read_text()
    assert len(shipped.read_text().splitlines()) < 40
    yaml_block = docs_block("Writing an adapter", "yaml")
    assert yaml_block == "# conf/algorithm/faiss_lsh.yaml\n" + \
        (ROOT / "conf" / "algorithm" / "faiss_lsh.yaml").read_text()


def test_lsh_adapter_finds_nearest_neighbours():
    # 2000 points around 20 centres in 32-d; the true nearest neighbour is among the 10
    # returned for 0.50 to 0.70 of the queries over data seeds 0..9 at 128 bits (0.60
    # at seed 0), against 10 / 2000 by chance
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 32)).astype(np.float32) * 3
    base = (centers[rng.integers(0, 20, 2000)] + rng.normal(size=(2000, 32))).astype(np.float32)
    queries = (centers[rng.integers(0, 20, 50)] + rng.normal(size=(50, 32))).astype(np.float32)
    nearest = (((queries[:, None] - base[None]) ** 2).sum(-1)).argmin(1)
    lsh = registry.create({"name": "faiss_lsh", "nbits": 128}).fit(base)
    lsh.add(base)
    distances, ids = lsh.search(queries, 10)
    assert distances.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (50, 10)
    assert np.all(np.diff(distances, axis=1) >= 0)
    recall = np.mean([nearest[i] in ids[i] for i in range(len(queries))])
    assert recall >= 0.5
    assert (lsh.code_bits, lsh.codes_bytes, lsh.model_bytes) == (128, 2000 * 16, 4 * 128 * 33)
