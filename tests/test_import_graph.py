"""No import circles in benchpq/ and algorithms/ (installed as benchpq.algorithms), and
imports that go one way between benchpq's wings.

The wings follow a run, from the floor up: the plugin contract (``benchpq/*.py``: api,
registry, checks, the metric table, ...), ``store/`` (records, caches, seals),
``native/`` (the C++ loader), ``datasets/``, ``measure/`` (tasks, metrics), the plugins
(``algorithms/``), ``report/`` and ``sweep/`` (the command line, the runner). A module
imports only from its own wing and the wings below it.

Every import counts, those inside functions too (a deferred import that closes a circle
only hides it); imports under ``if TYPE_CHECKING:`` never run and do not count.
"""
import ast
from pathlib import Path

from compose import REPO

#: package name -> its folder in the repository
PACKAGES = {"benchpq": REPO / "benchpq", "benchpq.algorithms": REPO / "algorithms"}
#: the wings from the floor up; "" is the floor (modules directly in benchpq/)
WINGS = ("", "store", "native", "datasets", "measure", "algorithms", "report", "sweep")


def modules() -> dict[str, Path]:
    out = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` (file ``path``) imports, at any depth."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        out.update(c for c in candidates if c in known and c != name)
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_finder_sees_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def wing(module: str) -> str:
    """The wing of a module of benchpq: the sub-package it is in ("" for the floor);
    ``python -m benchpq`` (``__main__``) is the command line."""
    if module == "benchpq.__main__":
        return "sweep"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in WINGS) else ""


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """The imports from a wing into a wing above it."""
    rank = {name: i for i, name in enumerate(WINGS)}
    return sorted(f"{a} ({wing(a) or 'floor'}) imports {b} ({wing(b)})"
                  for a, targets in graph.items() for b in targets
                  if rank[wing(b)] > rank[wing(a)])


def graph_of_modules() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def test_every_module_is_in_a_wing():
    assert {wing(m) for m in modules()} == set(WINGS)


def test_the_wing_check_sees_a_wrong_way_import():
    assert wrong_way({"benchpq.store.records": {"benchpq.sweep.runner"},
                      "benchpq.sweep.runner": {"benchpq.store.records", "benchpq.api"}}) == \
        ["benchpq.store.records (store) imports benchpq.sweep.runner (sweep)"]


def test_imports_go_one_way_between_the_wings():
    assert wrong_way(graph_of_modules()) == []


def test_no_import_circle_in_benchpq_or_its_algorithms():
    graph = graph_of_modules()
    assert sum(map(len, graph.values())) > 100  # the imports were read
    assert circles(graph) == []
