"""core/ is the headless engine: it must never import QGIS or Qt, and must only import itself relatively.

Two complementary checks: a static scan of every import statement in core/
(catches an import hidden in a function that no test calls), and a real
import of every core module in a fresh interpreter where importing qgis, Qt
bindings or sip fails (catches imports the scan cannot see, e.g. through a
third-party module). The real import runs under both names the engine has:
``core`` (CLI, tests) and ``s2_taskdriven_sr.core`` (inside QGIS).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"
FORBIDDEN = ("qgis", "PyQt5", "PyQt6", "PySide2", "PySide6", "sip", "shiboken2", "shiboken6")


def core_files() -> List[Path]:
    return sorted(p for p in CORE.rglob("*.py") if "__pycache__" not in p.parts)


def core_modules(package: str) -> List[str]:
    names = []
    for path in core_files():
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join([package, *parts[1:]]) if package != "core" else ".".join(parts))
    return names


def imports_of(path: Path) -> List[Tuple[int, int, str]]:
    """(line, level, module) of every import statement; level > 0 for relative imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, 0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.level, node.module or ""))
    return found


def test_core_has_modules_to_check():
    assert (CORE / "__init__.py").is_file()
    assert len(core_files()) > 5


def test_core_sources_import_no_qgis_or_qt():
    offenders = [f"{p.relative_to(ROOT)}:{line} imports {mod}"
                 for p in core_files() for line, level, mod in imports_of(p)
                 if level == 0 and mod.split(".")[0] in FORBIDDEN]
    assert not offenders, "core/ must stay free of QGIS and Qt:\n" + "\n".join(offenders)


def test_core_imports_itself_only_relatively():
    """``import core.x`` inside core/ would break the plugin, where the package is ``s2_taskdriven_sr.core``."""
    offenders = [f"{p.relative_to(ROOT)}:{line} imports {mod}"
                 for p in core_files() for line, level, mod in imports_of(p)
                 if level == 0 and mod.split(".")[0] in ("core", "s2_taskdriven_sr", "ui")]
    assert not offenders, "core/ must use relative imports (from .x import y):\n" + "\n".join(offenders)


def test_static_scan_catches_a_forbidden_import(tmp_path):
    """The scan itself works: it sees imports nested in functions and ``from`` forms."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from qgis.core import QgsProject\n    import PyQt5.QtCore\n")
    mods = [m for _, level, m in imports_of(probe) if level == 0]
    assert mods == ["qgis.core", "PyQt5.QtCore"]


BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    FORBIDDEN = {forbidden!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                raise ImportError(f"core must not import {{name}}")
            return None

    for name in list(sys.modules):
        if name.split(".")[0] in FORBIDDEN:
            del sys.modules[name]
    sys.meta_path.insert(0, Block())
    """
)


def run_blocked(body: str) -> subprocess.CompletedProcess:
    code = BLOCKER.format(forbidden=set(FORBIDDEN)) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True,
                          timeout=300)


def test_blocker_really_blocks():
    result = run_blocked("import qgis.core\n")
    assert result.returncode != 0
    assert "core must not import qgis" in result.stderr


@pytest.mark.parametrize("package", ["core", "s2_taskdriven_sr.core"])
def test_every_core_module_imports_without_qgis_or_qt(package):
    modules = core_modules(package)
    body = f"""
    import importlib, importlib.util, sys
    sys.path.insert(0, {str(ROOT)!r})
    if {package!r}.startswith("s2_taskdriven_sr"):
        # the plugin package itself (its __init__ must cope without QGIS too)
        spec = importlib.util.spec_from_file_location(
            "s2_taskdriven_sr", {str(ROOT / "__init__.py")!r}, submodule_search_locations=[{str(ROOT)!r}])
        module = importlib.util.module_from_spec(spec)
        sys.modules["s2_taskdriven_sr"] = module
        spec.loader.exec_module(module)
    failed = []
    for name in {modules!r}:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in {set(FORBIDDEN)!r})
    print("FAILED", failed)
    print("LEAKED", leaked)
    sys.exit(1 if failed or leaked else 0)
    """
    result = run_blocked(body)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
