"""OmegaConf resolvers used in benchpq's configs; registered when benchpq is imported.

* ``${benchpq_sweep_id:}``: a token unique to one ``benchpq`` invocation, so that two
  sweeps of the same name started in the same second get folders of their own. The
  main process draws it; worker processes (joblib, Ray, SLURM) inherit it through
  ``$BENCHPQ_SWEEP_ID``, and the resolved value is cached in the config they receive.
* ``${benchpq_file_stem:PATH}``: the file name of PATH without its extension, used to
  name file-based datasets after their file (``/data/glove-25.hdf5`` -> ``glove-25``).
* ``${benchpq_path_part:NAME}``: NAME when it is a plain folder name, else an error naming
  it (:func:`benchpq.checks.check_path_part`): the sweep's folder is made from ``name``
  before any run starts, so ``name=../../x`` must fail there.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from omegaconf import OmegaConf

SWEEP_ID_ENV = "BENCHPQ_SWEEP_ID"


def new_sweep_id() -> str:
    """Draw this invocation's sweep id and export it to the workers it starts."""
    os.environ[SWEEP_ID_ENV] = secrets.token_hex(3)
    return os.environ[SWEEP_ID_ENV]


def _sweep_id() -> str:
    return os.environ.get(SWEEP_ID_ENV) or new_sweep_id()


def _file_stem(path) -> str:
    name = Path(str(path)).name
    for suffix in (".gz", ".bz2", ".xz"):
        name = name[:-len(suffix)] if name.endswith(suffix) else name
    return name.split(".", 1)[0] if "." in name else name


def _path_part(name) -> str:
    from .checks import check_path_part
    return check_path_part(name, "name")


def register() -> None:
    """Register the resolvers once (idempotent)."""
    if not OmegaConf.has_resolver("benchpq_sweep_id"):
        OmegaConf.register_new_resolver("benchpq_sweep_id", _sweep_id, use_cache=True)
    if not OmegaConf.has_resolver("benchpq_file_stem"):
        OmegaConf.register_new_resolver("benchpq_file_stem", _file_stem)
    if not OmegaConf.has_resolver("benchpq_path_part"):
        OmegaConf.register_new_resolver("benchpq_path_part", _path_part)
