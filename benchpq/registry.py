"""Plugin registry: algorithm names to classes.

Plugins register with the :func:`register` decorator. They are found in two
places, the first time a name is looked up:

* every module of the ``algorithms`` package (this repository's plugins), and
* the entry point group ``benchpq.algorithms`` of installed distributions, whose
  entries point at a module (imported, so its decorators run) or at a class
  (registered under the entry point's name),

and in any module named by the config key ``plugins`` (see :func:`import_plugins`).

The core never imports a concrete plugin: adding one takes a module in
``algorithms/`` and a YAML in ``conf/algorithm/``.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path

from .api import Algorithm
from .checks import InputError
from .suggest import did_you_mean

ENTRY_POINT_GROUP = "benchpq.algorithms"
PLUGIN_PACKAGE = "benchpq.algorithms"

_registry: dict[str, type[Algorithm]] = {}
_discovered = False


class UnknownAlgorithmError(InputError):
    """An algorithm name that no plugin registered."""


class PluginImportError(InputError):
    """The plugin module that defines an algorithm cannot be imported."""


def register(name: str):
    """Class decorator: register ``cls`` as the plugin called ``name``."""
    def wrap(cls: type[Algorithm]) -> type[Algorithm]:
        if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
            raise TypeError(f"plugin {name!r}: {cls!r} is not a benchpq.api.Algorithm subclass")
        existing = _registry.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"plugin name {name!r} is taken by {existing.__module__}."
                             f"{existing.__qualname__}")
        cls.name = name
        _registry[name] = cls
        return cls
    return wrap


#: plugin modules (or entry points) that failed to import: name -> (error, names they declare)
_failed: dict[str, tuple[str, list[str]]] = {}


def discover() -> None:
    """Import every plugin module and entry point once.

    A module that fails to import (a missing library, a syntax error) is
    remembered, not raised: every other plugin still works, and asking for one
    of that module's algorithms raises an error naming the module and its error.
    """
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(PLUGIN_PACKAGE)
    for info in pkgutil.walk_packages(package.__path__, PLUGIN_PACKAGE + ".",
                                      onerror=_package_failed):
        if info.ispkg:
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # isolate a broken plugin module
            _failed[info.name] = (f"{type(exc).__name__}: {exc}", _declared_names(info))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as exc:
            _failed[f"entry point {ep.name} ({ep.value})"] = (f"{type(exc).__name__}: {exc}",
                                                               [ep.name])
            continue
        if isinstance(loaded, type):
            register(ep.name)(loaded)


def _package_failed(name: str) -> None:
    """walk_packages' error hook: a sub-package whose __init__ fails is remembered, not raised."""
    exc = sys.exc_info()[1]
    _failed[name] = (f"{type(exc).__name__}: {exc}", [])


def _declared_names(info) -> list[str]:
    """The names a plugin module registers, read from its source (it could not be imported)."""
    try:
        spec = info.module_finder.find_spec(info.name)
        source = Path(spec.origin).read_text()
    except Exception:  # no readable source: the names stay unknown
        return []
    return re.findall(r"""@register\(\s*["']([^"']+)["']""", source)


def import_failures() -> dict[str, str]:
    """Plugin modules that failed to import, with their errors."""
    discover()
    return {module: error for module, (error, _) in _failed.items()}


def import_plugins(modules) -> None:
    """Import extra plugin modules by dotted name (config key ``plugins``)."""
    for module in modules or ():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InputError(f"plugin module {module!r} cannot be imported: {exc}") from None


def names() -> list[str]:
    """Sorted names of all registered plugins."""
    discover()
    return sorted(_registry)


def get(name: str) -> type[Algorithm]:
    """The plugin class registered as ``name``; unknown names list the known ones."""
    discover()
    try:
        return _registry[name]
    except KeyError:
        pass
    for module, (error, declared) in _failed.items():
        if name in declared:
            raise PluginImportError(f"algorithm {name!r} is defined in plugin module {module}, "
                                    f"which failed to import: {error}") from None
    broken = f"; plugin modules that failed to import: {', '.join(_failed)}" if _failed else ""
    raise UnknownAlgorithmError(
        f"unknown algorithm {name!r}{did_you_mean(name, _registry)}; registered: "
        f"{', '.join(sorted(_registry))}{broken}") from None


def create(config) -> Algorithm:
    """Instantiate a plugin from its config mapping (``name`` plus constructor arguments).

    The ``search`` mapping (search-time settings, :mod:`benchpq.measure.search_grid`) is
    not a constructor argument: the task applies it after building. Unknown
    options fail with the plugin's accepted ones listed.
    """
    params = dict(config)
    params.pop("search", None)
    name = params.pop("name", None)
    if not name:
        raise InputError("algorithm config has no 'name'")
    cls = get(name)
    grid = config.get("search") or {}
    parts = grid if isinstance(grid, (list, tuple)) else [grid]
    grid_keys = {key for part in parts if isinstance(part, Mapping) for key in part}
    both = sorted(set(params) & grid_keys)
    if both:
        raise InputError(f"algorithm {name!r}: {', '.join(both)} set both as an option and in "
                         f"algorithm.search; search-time parameters belong in algorithm.search "
                         f"only")
    signature = inspect.signature(cls)
    accepted = list(signature.parameters)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    unknown = [] if takes_any else [key for key in params if key not in accepted]
    if unknown:
        raise InputError(f"algorithm {name!r}: unknown option {unknown[0]!r}"
                         f"{did_you_mean(unknown[0], accepted)}; accepted options: "
                         f"{', '.join(accepted) or 'none'}")
    try:
        signature.bind(**params)
    except TypeError as exc:
        raise InputError(f"algorithm {name!r}: {exc}; accepted options: "
                         f"{', '.join(accepted) or 'none'}") from None
    return cls(**params)
