"""benchpq's shipped Hydra configs composed from Python, as the command line composes them.

    compose_config("dataset/siftsmall").dataset          # one group's config
    compose_config("config", ["algorithm=pq", "dataset=synthetic"])   # a run's config

Works inside a running Hydra app too (a job calling it): that app's Hydra state is put
back afterwards.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig

from .resolvers import register
from .resources import conf_dir


@contextmanager
def shipped_configs() -> Iterator[None]:
    """A block in which Hydra's global state reads ``conf/`` (then it is put back)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    register()  # the benchpq_* resolvers some configs use
    outer = GlobalHydra.instance()
    running = outer.hydra if outer.is_initialized() else None
    outer.clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3",
                                   job_name="benchpq"):
            yield
    finally:
        GlobalHydra.instance().clear()
        if running is not None:
            GlobalHydra.instance().initialize(running)


def compose_config(name: str = "config", overrides: list[str] | None = None,
                   with_hydra: bool = False) -> DictConfig:
    """The config ``conf/<name>.yaml`` with command-line style ``overrides`` (no sweeps),
    unresolved; ``with_hydra`` keeps the ``hydra`` node (launcher, sweeper params)."""
    from hydra import compose
    with shipped_configs():
        return compose(config_name=name, overrides=list(overrides or []),
                       return_hydra_config=with_hydra)
