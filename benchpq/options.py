"""The run options of ``conf/config.yaml``, checked before a run starts.

Every error names its key, e.g. ``threads: expected an integer, got 'abc'``.
One seed range holds everywhere: 0 <= seed <= 2**31 - 1 (the seed a faiss
index accepts, and within numpy's and our C++ core's ranges).
"""
from __future__ import annotations

import math

from . import simd
from .checks import InputError, check_positive_int

MAX_SEED = 2 ** 31 - 1
BOOLEAN_OPTIONS = ("force", "cache_models", "fail_on_error")


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int in [0, 2**31 - 1], or raise naming ``name``."""
    return check_positive_int(seed, name, 0, MAX_SEED)


def check_run_options(config: dict) -> None:
    """Raise :class:`InputError` naming the first bad run option of ``config``."""
    check_positive_int(config.get("threads", 1), "threads")
    check_seed(config.get("seed", 0))
    timeout = config.get("timeout_s", 3600)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not math.isfinite(timeout) or timeout <= 0:
        raise InputError(f"timeout_s: expected a positive number of seconds, got {timeout!r}")
    for key in BOOLEAN_OPTIONS:
        if key in config and not isinstance(config[key], bool):
            raise InputError(f"{key}: expected true or false, got {config[key]!r}")
    if not isinstance(config.get("simd", "auto"), str):
        raise InputError(f"simd: expected one of {', '.join(simd.CHOICES)}, "
                         f"got {config.get('simd')!r}")
    simd.resolve(config.get("simd", "auto"))  # raises SimdError naming the choices
    for key in ("algorithm", "dataset", "task"):
        if not isinstance(config.get(key), dict):
            raise InputError(f"{key}: expected a config mapping, got {config.get(key)!r}")
