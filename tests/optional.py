"""Optional libraries in tests: skipped where absent, required in CI (which installs them)."""
from __future__ import annotations

import importlib
import os

import pytest


def requires(module: str):
    """Import ``module``; skip the test when it is absent, except in CI where that fails."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is not installed (an optional extra)")
