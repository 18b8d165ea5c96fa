"""A missing data set skips its tests locally (and the summary counts them), but fails them
under BENCHPQ_REQUIRE_DATA=1, as CI sets it (.ci/run), naming the missing data."""
import os
import subprocess
import sys

from compose import REPO

DATA_TESTS = ["tests/test_datasets.py::test_siftsmall",
              "tests/test_datasets.py::test_fashion_mnist",
              "tests/test_datasets.py::test_oxford5k_split"]


def run_without_data(tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if k != "BENCHPQ_REQUIRE_DATA"}
    environment.update(BENCHPQ_DATA=str(tmp_path / "no-data"), PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *DATA_TESTS], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=600)


def test_missing_data_is_skipped_and_counted_locally(tmp_path):
    done = run_without_data(tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "3 skipped" in done.stdout
    assert ("3 reference checks skipped for missing data "
            "(fashion-mnist, oxford5k-lopq, siftsmall)") in done.stdout


def test_missing_data_fails_when_required(tmp_path):
    done = run_without_data(tmp_path, BENCHPQ_REQUIRE_DATA="1")
    assert done.returncode == 1, done.stdout[-2000:]
    assert "3 error" in done.stdout
    for folder in ("siftsmall", "fashion-mnist", "oxford5k-lopq"):
        assert f"missing data set '{folder}'" in done.stdout
    assert "BENCHPQ_REQUIRE_DATA=1 requires it" in done.stdout
