"""The repository passes ``ruff check`` under the configuration in pyproject.toml.

ruff is in the ``test`` extra; outside CI a missing ruff skips the test, in CI
(``CI`` set) it fails.
"""
import importlib.util
import os
import subprocess
import sys

import pytest

from compose import REPO


def test_ruff_check_passes():
    if importlib.util.find_spec("ruff") is None:
        if os.environ.get("CI"):
            pytest.fail("ruff is not installed (pip install -e '.[test]')")
        pytest.skip("ruff is not installed")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(REPO)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
