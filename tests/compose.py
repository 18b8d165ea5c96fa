"""Compose benchpq's Hydra config in tests, as the command line would."""
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
TEST_PLUGINS = Path(__file__).resolve().parent / "plugins"


def compose_config(overrides=(), resolve=True):
    """The resolved config (a dict, or a DictConfig with resolve=False) for these overrides."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True) if resolve else cfg
