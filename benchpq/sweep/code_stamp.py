"""What code made a run: a stamp of the modules that define a plugin class.

The stamp is part of a model cache key (:func:`benchpq.store.model_cache.build_key`) and
of every run record (``code_stamp``): a model trained by other code is never loaded, and
records of other code are not taken as already made.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, version

from .. import native


def code_version(cls: type) -> str:
    """A stamp of the code that trains plugin class ``cls`` (hex digest).

    Hashes the source of every module that defines a class in ``cls``'s MRO
    (outside the core API), the versions of the third-party distributions those
    modules import (faiss, nanopq, ...), and, when they use the native layer,
    the key of the C++ library (its sources, flags and compiler).
    """
    digest = hashlib.sha256()
    modules = [sys.modules[c.__module__] for c in cls.__mro__
               if c.__module__ in sys.modules and c.__module__ not in ("builtins", "benchpq.api")]
    seen, distributions, uses_native = set(), set(), False
    for module in modules:
        if module.__name__ in seen:
            continue
        seen.add(module.__name__)
        try:
            digest.update(inspect.getsource(module).encode())
        except (OSError, TypeError):
            digest.update(module.__name__.encode())
        for value in vars(module).values():
            owner = getattr(value, "__module__", None) if not inspect.ismodule(value) \
                else value.__name__
            if not isinstance(owner, str):
                continue
            if owner == "benchpq.native" or owner.startswith("benchpq.native."):
                uses_native = True
            top = owner.split(".")[0]
            if (top not in ("benchpq", "builtins", "__main__")
                    and top not in sys.builtin_module_names):
                distributions.update(_distributions_of().get(top, []))
    for name in sorted(distributions):
        try:
            digest.update(f"{name}=={version(name)};".encode())
        except PackageNotFoundError:
            pass
    if uses_native:
        digest.update(native.build_key().encode())
    return digest.hexdigest()[:20]


@functools.lru_cache(maxsize=1)
def _distributions_of() -> dict:
    """Top-level import names to the distributions that provide them."""
    return packages_distributions()
