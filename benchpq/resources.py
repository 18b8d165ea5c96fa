"""Where benchpq's Hydra configs and C++ sources are, wherever benchpq is installed.

A wheel (``pip install .``) carries them inside the package, as ``benchpq/conf`` and
``benchpq/cpp``; a checkout (``pip install -e .``) keeps them at the top of the
repository, beside ``benchpq/``. The repository's ``conf/``, ``algorithms/`` and
``cpp/`` are mapped into the package at build time (``pyproject.toml``), so the
plugins are ``benchpq.algorithms`` either way.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """``benchpq/<name>`` of an installed wheel, else ``<checkout>/<name>``."""
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name


def conf_dir() -> Path:
    """The Hydra config folder (``config.yaml`` and its groups)."""
    return resource_dir("conf")


def cpp_dir() -> Path:
    """The C++ sources and headers of the native layer."""
    return resource_dir("cpp")
