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
from collections.abc import Mapping
import inspect
import pkgutil
from importlib.metadata import entry_points

from .api import Algorithm
from .checks import InputError

ENTRY_POINT_GROUP = "benchpq.algorithms"
PLUGIN_PACKAGE = "algorithms"

_registry: dict[str, type[Algorithm]] = {}
_discovered = False


class UnknownAlgorithmError(InputError):
    """An algorithm name that no plugin registered."""


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


def discover() -> None:
    """Import every plugin module and entry point once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(PLUGIN_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__, PLUGIN_PACKAGE + "."):
        importlib.import_module(info.name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        loaded = ep.load()
        if isinstance(loaded, type):
            register(ep.name)(loaded)


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
        raise UnknownAlgorithmError(
            f"unknown algorithm {name!r}; registered: {', '.join(sorted(_registry))}") from None


def create(config) -> Algorithm:
    """Instantiate a plugin from its config mapping (``name`` plus constructor arguments).

    The ``search`` mapping (search-time settings, :mod:`benchpq.search_grid`) is
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
    try:
        signature.bind(**params)
    except TypeError as exc:
        accepted = ", ".join(signature.parameters) or "none"
        raise InputError(f"algorithm {name!r}: {exc}; accepted options: {accepted}") from None
    return cls(**params)
