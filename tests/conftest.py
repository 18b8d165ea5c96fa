"""Shared fixtures: where the real test data lives, and no network in tests.

``data_dir`` is ``$BENCHPQ_DATA`` or ``<repo>/../shared/data`` (DESIGN.md:
"Real data available to tests"). The per-dataset fixtures skip a test only
when that dataset's folder is absent; in CI it is present.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _offline():
    """Tests never reach the network: BENCHPQ_OFFLINE=1 unless set otherwise."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BENCHPQ_OFFLINE", os.environ.get("BENCHPQ_OFFLINE", "1"))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The read-only folder with the real datasets."""
    return Path(os.environ.get("BENCHPQ_DATA", REPO.parent / "shared" / "data"))


def _dataset_dir(data_dir: Path, folder: str) -> Path:
    path = data_dir / folder
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def siftsmall_dir(data_dir) -> Path:
    """texmex siftsmall: siftsmall_{base,query}.fvecs, siftsmall_groundtruth.ivecs."""
    return _dataset_dir(data_dir, "siftsmall")


@pytest.fixture(scope="session")
def fashion_mnist_dir(data_dir) -> Path:
    """Fashion-MNIST IDX .gz files and derived/ ground truth."""
    return _dataset_dir(data_dir, "fashion-mnist")


@pytest.fixture(scope="session")
def oxford5k_dir(data_dir) -> Path:
    """LOPQ's oxford_features.fvecs (5063 x 128)."""
    return _dataset_dir(data_dir, "oxford5k-lopq")
