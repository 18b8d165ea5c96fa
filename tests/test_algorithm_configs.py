"""Each algorithm YAML states its plugin's defaults: what the config says is what the class does."""
import inspect
from pathlib import Path

import pytest
import yaml

from benchpq import registry
from benchpq.measure import search_grid

CONF = Path(__file__).resolve().parent.parent / "conf" / "algorithm"
YAMLS = sorted(CONF.glob("*.yaml"))


@pytest.mark.parametrize("path", YAMLS, ids=[p.stem for p in YAMLS])
def test_yaml_defaults_equal_the_constructor_defaults(path):
    config = yaml.safe_load(path.read_text())
    cls = registry.get(config.pop("name"))
    search = config.pop("search", None) or {}
    params = inspect.signature(cls).parameters
    for key, value in config.items():
        assert key in params, f"{path.name}: {key} is not an option of {cls.__name__}"
        default = params[key].default
        assert default is not inspect.Parameter.empty, f"{path.name}: {key} has no default"
        assert value == default, f"{path.name}: {key} is {value!r}, {cls.__name__} says {default!r}"
    missing = [k for k, p in params.items() if p.default is not inspect.Parameter.empty
               and k not in config and k not in search and p.kind is p.POSITIONAL_OR_KEYWORD]
    assert not missing, f"{path.name} does not state {missing}"
    accepted = search_grid.accepted(cls)
    for key, value in search.items():
        assert key in accepted, f"{path.name}: search.{key} is not a search parameter of {cls}"
        if key in params:  # the constructor's value is the search default
            assert value == params[key].default, (
                f"{path.name}: search.{key} is {value!r}, {cls.__name__} says "
                f"{params[key].default!r}")
    assert sorted(search) == sorted(accepted), f"{path.name} must list every search parameter"
