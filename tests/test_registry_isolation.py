"""A plugin module that fails to import breaks only its own algorithms."""
import sys

import pytest

from benchpq import registry


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """A plugin package with a good module and one whose library is missing."""
    pkg = tmp_path / "tmp_plugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(
        "from benchpq.api import Searcher\nfrom benchpq.registry import register\n\n"
        "@register('tmp_good')\nclass Good(Searcher):\n    pass\n")
    (pkg / "broken.py").write_text(
        "import a_library_that_is_not_installed\nfrom benchpq.registry import register\n\n"
        "@register('tmp_broken')\nclass Broken:\n    pass\n")
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
    assert list(registry.import_failures()) == ["tmp_plugins.broken"]


def test_an_unknown_name_lists_the_modules_that_failed(plugin_package):
    with pytest.raises(registry.UnknownAlgorithmError,
                       match=r"unknown algorithm 'nope'; registered: tmp_good; plugin modules "
                             r"that failed to import: tmp_plugins.broken"):
        registry.get("nope")
