"""The house's shape, checked from the source: no import cycles, no private names across modules.

Why a test: both rules erode one convenient import at a time, and a cycle in
``core`` or ``ui`` makes import order matter (a module half-initialised when
another takes a name from it). Imports are read with ``ast`` (what the code
says, not what one run happens to load), including imports inside functions:
a lazy import still ties two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "ui")


def _modules() -> Dict[str, Path]:
    mods: Dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            name = ".".join(rel.parts)
            mods[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return mods


def _imports(name: str, path: Path, mods: Dict[str, Path]) -> List[Tuple[str, List[str]]]:
    """``(module imported, names taken from it)`` for every import of ``name`` that lands in the house."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in mods:
                    found.append((alias.name, []))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            if target in mods:
                found.append((target, [n for n in names if f"{target}.{n}" not in mods]))
            for n in names:  # "from . import x" where x is a module
                if f"{target}.{n}" in mods:
                    found.append((f"{target}.{n}", []))
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            lazy = _resolve_lazy(node.args[0].value, package)  # core.lazy: an import all the same
            if lazy in mods:
                found.append((lazy, []))
    return found


def _resolve_lazy(name: str, package: List[str]) -> str:
    """``".inference.sr_job"`` seen from package ``core`` -> ``core.inference.sr_job`` (as a relative import)."""
    level = len(name) - len(name.lstrip("."))
    if not level:
        return name
    base = package[: len(package) - level + 1]
    return ".".join(base + [name.lstrip(".")])


def _graph() -> Tuple[Dict[str, Set[str]], List[str]]:
    mods = _modules()
    graph: Dict[str, Set[str]] = {m: set() for m in mods}
    private: List[str] = []
    for name, path in mods.items():
        for target, names in _imports(name, path, mods):
            if target != name and not name.startswith(target + "."):  # a package's own __init__ is not a cycle
                graph[name].add(target)
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    private.append(f"{name} imports {n} from {target}")
    return graph, private


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_in_core_and_ui():
    graph, _ = _graph()
    assert sum(len(v) for v in graph.values()) > 100, "the import graph looks empty: the walker is broken"
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_takes_a_private_name_from_another():
    _, private = _graph()
    assert private == []


def test_lazy_modules_count_as_imports():
    assert _resolve_lazy(".inference.sr_job", ["core"]) == "core.inference.sr_job"
    assert _resolve_lazy("..training.trainer", ["core", "cli"]) == "core.training.trainer"
    graph, _ = _graph()
    assert "core.inference.sr_job" in graph["core.api"]


def test_core_never_imports_ui():
    graph, _ = _graph()
    assert [f"{m} -> {t}" for m, ts in graph.items() if m.startswith("core") for t in ts if t.startswith("ui")] == []


#: DESIGN.md section 2: the layers of core, lowest first. A module may import its own layer and those below.
LAYERS = (("core", "core.jobs", "core.options"), ("core.models",), ("core.io",), ("core.data",), ("core.inference",),
          ("core.evaluation",), ("core.training",), ("core.area",), ("core.api",), ("core.cli",), ("ui",))


def _layer(module: str) -> int:
    """Index in LAYERS of the deepest prefix that matches ``module`` (``core`` itself is the bottom)."""
    best, depth = -1, -1
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and n.count(".") > depth:
                best, depth = i, n.count(".")
    assert best >= 0, f"{module} is in no layer of DESIGN.md section 2"
    return best


def _upward(graph: Dict[str, Set[str]]) -> List[str]:
    return sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts if _layer(t) > _layer(m))


def test_no_package_imports_a_layer_above_it():
    graph, _ = _graph()
    assert _upward(graph) == []


def test_the_layer_check_sees_an_upward_import():
    assert _upward({"core.models.card": {"core.io.sentinel2"}, "core.io.stack": {"core.models.card"}}) == [
        "core.models.card -> core.io.sentinel2"]
    assert _layer("core.options") == 0 and _layer("core.cli.main") == 9 and _layer("ui.dock.sr_tab") == 10
