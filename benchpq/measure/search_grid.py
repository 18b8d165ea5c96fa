"""Search-time grids: the ``search`` mapping of an algorithm config.

An algorithm config may carry ``search: {param: value or [values], ...}``:
parameters that change how a built model searches (nprobe, quota, ...), not
how it is trained. One run builds the model once, then searches at every
combination of the grid (:func:`expand`), each a *setting* with a record of
its own. Where parameters go in pairs rather than as a product (a budget and
the cells it needs), ``search`` may be a list of such mappings, whose
settings are concatenated. A plugin accepts exactly the keyword parameters of its
``set_search_params`` (:func:`accepted`); anything else is refused before
anything is trained (:func:`check`).

    >>> expand({"nprobe": [1, 4], "max_codes": 100})
    [{'max_codes': 100, 'nprobe': 1}, {'max_codes': 100, 'nprobe': 4}]
    >>> expand([{"max_codes": 100, "nprobe": 16}, {"max_codes": 1000, "nprobe": 64}])
    [{'max_codes': 100, 'nprobe': 16}, {'max_codes': 1000, 'nprobe': 64}]
"""
from __future__ import annotations

import inspect
import itertools
from collections.abc import Mapping

from ..checks import InputError, check_positive_int

SEARCH_KEY = "search"


def expand(grid: Mapping | list | None) -> list[dict]:
    """Every setting of a grid, in order: the product of the value lists.

    Keys are sorted; a scalar counts as a list of one value; an empty or
    missing grid gives one empty setting (search with the built-in defaults);
    a list of mappings gives the settings of each in turn. A setting is a plain
    dict of scalars; repeated settings are dropped.
    """
    if grid is None:
        return [{}]
    if isinstance(grid, (list, tuple)):
        if not grid or not all(isinstance(part, Mapping) for part in grid):
            raise InputError(f"algorithm.search as a list must hold one or more mappings of "
                             f"search parameters, got {grid!r}")
        settings = []
        for part in grid:
            settings += [s for s in expand(part) if s not in settings]
        return settings
    if not isinstance(grid, Mapping):
        raise InputError(f"algorithm.search must be a mapping of search parameters to values "
                         f"or lists of values, got {type(grid).__name__} {grid!r}")
    keys = sorted(grid)
    values = []
    for key in keys:
        value = grid[key]
        if isinstance(value, (list, tuple)):
            if not value:
                raise InputError(f"algorithm.search.{key} is an empty list: give at least one "
                                 f"value")
            values.append(list(value))
        elif isinstance(value, Mapping):
            raise InputError(f"algorithm.search.{key} must be a value or a list of values, got "
                             f"a mapping {dict(value)!r}")
        else:
            values.append([value])
    settings = [dict(zip(keys, combo)) for combo in itertools.product(*values)]
    unique = []
    for setting in settings:
        if setting not in unique:
            unique.append(setting)
    return unique


def accepted(plugin_or_class) -> list[str]:
    """Names of the search-time parameters a plugin accepts (its ``set_search_params``)."""
    cls = plugin_or_class if isinstance(plugin_or_class, type) else type(plugin_or_class)
    method = getattr(cls, "set_search_params", None)
    if method is None:
        return []
    params = inspect.signature(method).parameters.values()
    return [p.name for p in params if p.name != "self"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check(plugin, settings: list[dict]) -> None:
    """Refuse unknown parameters and bad values before the plugin is trained.

    Every setting is applied to the (untrained) plugin once, so that value
    checks run now; the caller applies each setting again before searching.
    Raises :class:`InputError` naming the accepted parameters.
    """
    names = accepted(plugin)
    unknown = sorted({key for setting in settings for key in setting} - set(names))
    if unknown:
        what = (f"accepts {', '.join(names)}" if names
                else "has no search-time parameters (nothing can change after building)")
        raise InputError(f"algorithm {plugin.name!r}: unknown search parameter"
                         f"{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; it {what}")
    for setting in settings:
        if setting:
            apply(plugin, setting)


def apply(plugin, setting: dict) -> None:
    """``plugin.set_search_params(**setting)``, with plugin TypeErrors turned into InputError."""
    try:
        plugin.set_search_params(**setting)
    except TypeError as exc:
        raise InputError(f"algorithm {plugin.name!r}: search setting {setting}: {exc}") from None


def describe(setting: dict) -> str:
    """A short label of a setting, e.g. ``nprobe=4, quota=1000`` (``default`` when empty)."""
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "default"


def check_search_options(task: dict, k: int | None = None) -> tuple[list[int], list[int]]:
    """The search task's ``recall_at`` and ``k_recall``: lists of integers in [1, k].

    ``k``: the k in force (default: the task's ``k``). Returns the two lists as ints.
    """
    k = check_positive_int(task.get("k", 100), "task.k") if k is None else k
    out = []
    for key, default in (("recall_at", [1, 10, 100]), ("k_recall", [10])):
        values = task.get(key, default)
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
            raise InputError(f"task.{key}: expected a list of integers in [1, k={k}], "
                             f"got {values!r}")
        checked = []
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= k:
                raise InputError(f"task.{key}: {value!r} is not an integer in [1, k={k}] "
                                 f"(a recall needs that many results per query; set "
                                 f"task.{key} to values up to {k}, or raise task.k)")
            checked.append(int(value))
        out.append(checked)
    return out[0], out[1]
