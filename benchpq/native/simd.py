"""Which SIMD path of the native core this process runs, and the flags that build it.

The C++ core is compiled with fixed flags for one of three paths, never with
``-march=native``:

========  =====================================  ==========================================
path      compiler flags (x86-64)                runs on
========  =====================================  ==========================================
scalar    none (the compiler's baseline target)  every CPU, x86 or not
avx2      AVX2, FMA, BMI1/2, POPCNT, F16C, LZCNT  x86-64 CPUs with AVX2 and FMA (x86-64-v3)
avx512    the above + AVX-512 F, BW, CD, DQ, VL   x86-64 CPUs with those (x86-64-v4)
========  =====================================  ==========================================

All three give bit-identical results: every float reduction of the core is
written out in one order, and products are fused only where a kernel asks for
it (``cpp/internal/simd.h``). ``auto`` (the default) takes the widest path the
CPU supports; ``BENCHPQ_SIMD=scalar|avx2|avx512`` forces one, capped at what the
CPU has (with a warning that says what is missing). ``native`` builds with
``-march=native`` and the compiler's default contraction: the build benchpq had
before its paths were made portable, kept to measure what portability costs; its
results may differ in the last bits from the three portable paths.

What the CPU supports comes from numpy's run-time CPU detection (which also
checks that the operating system saves the wide registers).
"""
from __future__ import annotations

import functools
import logging
import os
import platform

from ..checks import InputError
from ..store.provenance import cpu_model

ENV = "BENCHPQ_SIMD"
AUTO = "auto"
NATIVE = "native"
#: the portable paths, narrowest first
PATHS = ("scalar", "avx2", "avx512")
CHOICES = (AUTO, *PATHS, NATIVE)

#: the CPU features each x86 path needs (numpy's names)
FEATURES = {
    "scalar": (),
    "avx2": ("AVX2", "FMA3", "BMI", "BMI2", "POPCNT", "F16C", "LZCNT"),
    "avx512": ("AVX2", "FMA3", "BMI", "BMI2", "POPCNT", "F16C", "LZCNT",
               "AVX512F", "AVX512BW", "AVX512CD", "AVX512DQ", "AVX512VL"),
}
#: the compiler flags of each x86 path (one per feature above: no tuning flag, so
#: the same compiler makes the same library on every machine)
X86_FLAGS = {
    "scalar": (),
    "avx2": ("-mavx2", "-mfma", "-mbmi", "-mbmi2", "-mpopcnt", "-mf16c", "-mlzcnt"),
    "avx512": ("-mavx2", "-mfma", "-mbmi", "-mbmi2", "-mpopcnt", "-mf16c", "-mlzcnt",
               "-mavx512f", "-mavx512bw", "-mavx512cd", "-mavx512dq", "-mavx512vl"),
}
#: the level the library reports (benchpq::simd_level()) for each path
LEVELS = {"scalar": 0, "avx2": 1, "avx512": 2}

log = logging.getLogger("benchpq")


class SimdError(InputError):
    """An unknown SIMD path was asked for."""


def is_x86() -> bool:
    """Whether this machine is x86-64 (or 32-bit x86)."""
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


@functools.lru_cache(maxsize=1)
def cpu_features() -> frozenset[str]:
    """The CPU features numpy detected at run time (empty where it cannot say)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return frozenset()
    return frozenset(name for name, present in features.items() if present)


def missing_features(path: str, features: frozenset[str] | None = None) -> list[str]:
    """The CPU features ``path`` needs that this CPU lacks (all of them off x86)."""
    if path == "scalar":
        return []
    if not is_x86():
        return [f"an x86-64 CPU (this one is {platform.machine()})"]
    have = cpu_features() if features is None else features
    return [name for name in FEATURES[path] if name not in have]


def supported() -> list[str]:
    """The portable paths this CPU runs, narrowest first (``scalar`` always)."""
    return [path for path in PATHS if not missing_features(path)]


def best() -> str:
    """The widest portable path this CPU runs."""
    return supported()[-1]


def requested() -> str:
    """``$BENCHPQ_SIMD`` (lower case), ``auto`` when unset or empty."""
    return (os.environ.get(ENV) or AUTO).strip().lower()


def resolve(request: str | None = None) -> str:
    """The path a request names on this CPU: ``auto`` -> :func:`best`; a portable path
    the CPU lacks -> the widest it has, with a warning naming what is missing;
    ``native`` stays ``native``. ``request`` defaults to :func:`requested`."""
    request = (request or requested()).strip().lower()
    if request not in CHOICES:
        raise SimdError(f"{ENV}={request!r} is not a SIMD path: expected one of "
                        f"{', '.join(CHOICES)}")
    if request == AUTO:
        return best()
    if request == NATIVE:
        return NATIVE
    missing = missing_features(request)
    if not missing:
        return request
    capped = best()
    log.warning("%s=%s asks for a SIMD path this CPU (%s) cannot run: it lacks %s; "
                "using %s instead", ENV, request, cpu_model(), ", ".join(missing), capped)
    return capped


def compiler_flags(path: str) -> tuple[str, ...]:
    """The target flags that build ``path`` on this machine (none for scalar or off x86)."""
    if path == NATIVE:
        return ("-march=native",)
    if not is_x86():
        return ()
    return X86_FLAGS[path]


