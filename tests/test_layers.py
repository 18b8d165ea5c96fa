"""The plugin layers: each imports only the layers below it and no other module's private
names, and the package list of pyproject.toml ships every layer."""
import ast
import re

import pytest

from compose import REPO

ALGORITHMS = REPO / "algorithms"
#: layer -> the layers its modules may import (itself included)
ALLOWED = {"primitives": {"primitives"}, "own": {"primitives", "own"},
           "adapters": {"primitives", "own", "adapters"},
           "compat": {"primitives", "own", "compat"}}
MODULES = sorted(p for p in ALGORITHMS.rglob("*.py") if p.parent != ALGORITHMS)


def imported(path):
    """(layer or None, module name, imported names) of each import of benchpq.algorithms."""
    layer = path.parent.name
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:  # relative: . is this layer, .. the algorithms package
            target = layer if node.level == 1 else (node.module or "").split(".")[0]
        elif (node.module or "").startswith("benchpq.algorithms."):
            target = node.module.split(".")[2]
        else:
            continue
        yield target, node.module, [alias.name for alias in node.names]


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ALGORITHMS)) for p in MODULES])
def test_imports_follow_the_layers(path):
    layer = path.parent.name
    assert layer in ALLOWED, f"{path.parent} is not a known layer"
    for target, module, names in imported(path):
        assert target in ALLOWED[layer], f"{path.name} ({layer}) imports {module} ({target})"
        private = [n for n in names if n.startswith("_")]
        assert not private, f"{path.name} imports private {private} from {module}"


def test_every_layer_is_packaged():
    # the [tool.setuptools] packages list (tomllib is not in Python 3.10)
    listed = re.search(r"^packages = \[(.*?)\]", (REPO / "pyproject.toml").read_text(),
                       re.M | re.S).group(1)
    packages = re.findall(r'"([^"]+)"', listed)
    layers = {p.parent.name for p in ALGORITHMS.glob("*/__init__.py")}
    assert layers == set(ALLOWED)
    assert {f"benchpq.algorithms.{layer}" for layer in layers} <= set(packages)
