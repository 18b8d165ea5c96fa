"""Config paths made absolute against the folder the sweep was started in.

A job may run in another process, on another machine, in another working
directory (Ray, SLURM). So ``results_dir``, ``data_dir`` and ``cache_dir``
(from the config or from ``$BENCHPQ_DATA`` / ``$BENCHPQ_CACHE``), and Hydra's
own output folders built from ``results_dir``, are made absolute against
``hydra.runtime.cwd``: the folder ``benchpq`` was started in, recorded when the
config was composed. ``~`` is expanded; absolute paths are kept as given.

The resolver ``${benchpq.abspath:PATH,BASE}`` does the same inside the config
(``conf/config.yaml`` uses it for ``hydra.sweep.dir``). It is registered when
this module is imported: by :mod:`benchpq.sweep.cli` where the sweep starts, and by
:mod:`benchpq.sweep.hydra_callbacks`, which every Ray or submitit worker imports when
it unpickles the sweep's callbacks, before it resolves its output folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

#: config keys holding folders
PATH_KEYS = ("results_dir", "data_dir", "cache_dir")
RESOLVER = "benchpq.abspath"


def absolute_path(path: str | os.PathLike, base: str | os.PathLike) -> str:
    """``path`` with ``~`` expanded, joined to ``base`` when relative (no symlink resolution)."""
    path = Path(path).expanduser()
    return str(path if path.is_absolute() else Path(base).expanduser() / path)


def absolute_paths(config: dict, base: str | os.PathLike) -> dict:
    """A copy of a resolved config whose :data:`PATH_KEYS` are absolute; unset keys stay unset."""
    return {k: absolute_path(v, base) if k in PATH_KEYS and v else v for k, v in config.items()}


if not OmegaConf.has_resolver(RESOLVER):
    OmegaConf.register_new_resolver(RESOLVER, lambda path, base: absolute_path(path, base))
