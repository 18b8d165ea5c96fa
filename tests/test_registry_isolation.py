"""A plugin module that fails to import breaks only its own algorithms."""
import sys

import pytest

from benchpq import registry


def plugin_module(name: str, cls: str, first_line: str = "from benchpq.api import Searcher",
                  base: str = "Searcher") -> str:
    """The source of a module registering class ``cls`` as ``name``, after ``first_line``."""
    return (f"{first_line}\nfrom benchpq.registry import register\n\n"
            f"@register('{name}')\nclass {cls}({base}):\n    pass\n")


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """A plugin package with a good module and one whose library is missing, and a
    sub-package with a good and a broken module beside a sub-package that fails."""
    pkg = tmp_path / "tmp_plugins"
    sub = pkg / "layer"  # plugins live in sub-packages too (own/, adapters/...)
    bad = pkg / "bad_layer"  # a sub-package whose __init__ itself fails
    for folder in (pkg, sub, bad):
        folder.mkdir()
        (folder / "__init__.py").write_text("")
    (bad / "__init__.py").write_text("raise ValueError('bad package')\n")
    (pkg / "good.py").write_text(plugin_module("tmp_good", "Good"))
    (pkg / "broken.py").write_text(plugin_module("tmp_broken", "Broken",
                                                 "import a_library_that_is_not_installed",
                                                 "object"))
    (sub / "deep.py").write_text(plugin_module("tmp_deep", "Deep"))
    (sub / "deep_broken.py").write_text(plugin_module(
        "tmp_deep_broken", "DeepBroken", "raise RuntimeError('broken at import')", "object"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "PLUGIN_PACKAGE", "tmp_plugins")
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.setattr(registry, "_failed", {})
    monkeypatch.setattr(registry, "_registry", {})
    yield
    for name in [m for m in sys.modules if m.startswith("tmp_plugins")]:
        del sys.modules[name]


def test_other_algorithms_still_work_and_the_broken_one_says_why(plugin_package):
    assert registry.get("tmp_good").__name__ == "Good"
    with pytest.raises(registry.PluginImportError,
                       match=r"algorithm 'tmp_broken' is defined in plugin module "
                             r"tmp_plugins.broken, which failed to import: ModuleNotFoundError: "
                             r"No module named 'a_library_that_is_not_installed'"):
        registry.get("tmp_broken")
    assert sorted(registry.import_failures()) == ["tmp_plugins.bad_layer", "tmp_plugins.broken",
                                                  "tmp_plugins.layer.deep_broken"]


def test_modules_of_sub_packages_are_found_and_isolated(plugin_package):
    assert registry.get("tmp_deep").__name__ == "Deep"
    with pytest.raises(registry.PluginImportError,
                       match=r"tmp_plugins.layer.deep_broken, which failed to import: "
                             r"RuntimeError: broken at import"):
        registry.get("tmp_deep_broken")
    assert registry.import_failures()["tmp_plugins.bad_layer"] == "ValueError: bad package"


def test_an_unknown_name_lists_the_modules_that_failed(plugin_package):
    with pytest.raises(registry.UnknownAlgorithmError,
                       match=r"unknown algorithm 'nope'; registered: tmp_deep, tmp_good; plugin "
                             r"modules that failed to import: tmp_plugins.bad_layer, "
                             r"tmp_plugins.broken, tmp_plugins.layer.deep_broken"):
        registry.get("nope")
