"""The run options of ``conf/config.yaml``, checked before a run starts.

Every error names its key, e.g. ``threads: expected an integer, got 'abc'``.
One seed range holds everywhere: 0 <= seed <= 2**31 - 1 (the seed a faiss
index accepts, and within numpy's and our C++ core's ranges).

A misspelt key or config choice on the command line fails when Hydra composes
the config; :func:`composition_hint` turns that failure into a line naming the
key and the closest valid one, and :func:`override_probes` lists the command
lines whose composition reaches every config choice of a sweep.
"""
from __future__ import annotations

import math

from ..checks import InputError, check_path_part, check_positive_int
from ..measure.search_grid import check_search_options
from ..measure.threads import search_thread_counts
from ..native import simd
from ..suggest import did_you_mean

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
    request = config.get("simd", "auto")
    if not isinstance(request, str) or request.strip().lower() not in simd.CHOICES:
        hint = did_you_mean(request.strip().lower(), simd.CHOICES) \
            if isinstance(request, str) else ""
        raise InputError(f"simd: {request!r} is not a SIMD path{hint}: expected one of "
                         f"{', '.join(simd.CHOICES)}")
    simd.resolve(config.get("simd", "auto"))  # raises SimdError naming the choices
    for key in ("algorithm", "dataset", "task"):
        if not isinstance(config.get(key), dict):
            raise InputError(f"{key}: expected a config mapping, got {config.get(key)!r}")
    check_path_part(config.get("name"), "name")
    check_path_part(config["dataset"].get("name"), "dataset.name")
    if config["task"].get("name") == "search":
        check_search_options(config["task"])
        search_thread_counts(config["task"], int(config.get("threads", 1)))


def composition_hint(exc: BaseException) -> str | None:
    """What Hydra's composition error ``exc`` means, with the closest valid name; None when
    ``exc`` is not a misspelt key or config choice, or when no valid name is close.

    * an unknown key (``algorithm.m=4``, ``thread=2``): ``unknown option 'algorithm.m'
      (did you mean 'M'?)``, the choices being the keys beside it;
    * an unknown config (``algorithm=faiss_pqq``, also one an experiment names):
      ``no config 'faiss_pqq' in group 'algorithm' (did you mean 'faiss_pq'?)``.
    """
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError
    if isinstance(exc, MissingConfigException):
        missing = getattr(exc, "missing_cfg_file", None) or ""
        group, _, name = missing.rpartition("/")
        hint = did_you_mean(name, getattr(exc, "options", None) or ()) if group else ""
        return f"no config {name!r} in group {group!r}{hint}" if hint else None
    cause = exc.__cause__
    if isinstance(exc, ConfigCompositionException) \
            and isinstance(cause, (ConfigAttributeError, ConfigKeyError)) \
            and cause.parent_node is not None and cause.key is not None:
        hint = did_you_mean(str(cause.key), [str(k) for k in cause.parent_node.keys()])
        return f"unknown option {cause.full_key or cause.key!r}{hint}" if hint else None
    return None


def override_probes(overrides: list[str]) -> list[list[str]]:
    """Command lines without sweeps that together compose every config choice of a sweep.

    Hydra composes a multirun's config without its sweeps and each job's config when the
    job starts, so a misspelt key or choice in a sweep would fail only there, after the
    jobs before it ran. The first probe takes each sweep's first value; each further
    probe changes one top-level sweep of names (a config group such as
    ``algorithm=pq,opq``, or ``simd=...``) to another of its values. Sweeps of nested keys
    (``algorithm.M=4,8``) and of numbers are probed with their first value only: their
    values do not change which keys exist.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    parsed = OverridesParser.create().parse_overrides(overrides)
    values = []
    for override in parsed:
        try:
            swept = list(override.sweep_string_iterator()) if override.is_sweep_override() \
                else []
        except Exception:  # a sweep that cannot be listed (an interval): left to Hydra
            swept = []
        values.append([f"{override.get_key_element()}={v}" for v in swept]
                      or [override.input_line])
    first = [choices[0] for choices in values]
    probes = [first]
    for i, (override, choices) in enumerate(zip(parsed, values)):
        if "." in override.key_or_group or len(choices) < 2 \
                or not all(isinstance(v, str) for v in override.sweep_iterator()):
            continue  # a nested key, or numbers (seed=0,1,2): no config depends on them
        probes += [first[:i] + [choice] + first[i + 1:] for choice in choices[1:]]
    return probes
