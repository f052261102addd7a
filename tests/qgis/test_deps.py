"""The dependency path: what ``ui/install`` decides, and the Install dependencies dialog running real pip.

Why real pip: "install the dependencies" is where deep-learning QGIS plugins
break most often, and only a real pip run shows that the command the dialog
builds is accepted, that its output streams into the log, that ``--target``
puts the package where the plugin adds it to ``sys.path``, and that Cancel
stops pip mid-download with nothing installed. No network is needed: the
install reads a wheel built here with ``--no-index --find-links``, and the
cancelled run talks to a local "index" that accepts the connection and never
answers, which is what a slow or stalled download looks like to pip. QGIS's
interpreter is found and checked by running candidates; the fakes here are
tiny shell scripts that print a version, as ``python --version`` does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, List

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE_DIST = "s2sr-probe-pkg"


def _ui_module(name: str) -> Any:
    """A fixture giving the plugin's module ``ui.<name>`` (the fixture is named by the variable it is bound to)."""

    @pytest.fixture
    def fixture(qh: Any) -> ModuleType:
        return qh.ui(name)

    return fixture


deps = _ui_module("install.deps")
install_mod = _ui_module("install.dialog")
pipmod = _ui_module("install.pip")
interp = _ui_module("install.interpreter")


def fake_python(path: Path, version: str) -> Path:
    """A "Python" that only answers ``--version`` (enough for the interpreter checks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho 'Python {version}'\n")
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- a local wheel, a hermetic pip


def build_wheel(folder: Path, module: str, version: str = "0.1") -> Path:
    """Distribution ``s2sr-probe-pkg`` holding the package ``module``, as a wheel written by hand.

    A wheel is a zip with three metadata files; pip checks that the file name,
    the ``.dist-info`` folder and ``Name:`` agree, and the RECORD hashes.
    """
    stem = PROBE_DIST.replace("-", "_")
    dist_info = f"{stem}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f'VALUE = "installed by the Install dependencies test"\nVERSION = "{version}"\n',
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE_DIST}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: s2sr-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


@pytest.fixture
def hermetic_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip sees only what the test gives it: no config files, no PIP_* variables, no proxy.

    The dialog's QProcess inherits this process's environment, so this reaches the child pip.
    """
    for key in list(os.environ):
        if key.startswith("PIP_") or key.lower() in {"http_proxy", "https_proxy", "all_proxy"}:
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module name no environment has; ``sys.path`` and ``sys.modules`` are restored afterwards."""
    name = f"s2sr_probe_{uuid.uuid4().hex[:10]}"
    monkeypatch.setattr(sys, "path", list(sys.path))  # the dialog appends the target folder
    yield name
    sys.modules.pop(name, None)


def _dialog(install_mod: ModuleType, deps: ModuleType, module: str, target: Path, extra: List[str]) -> Any:
    req = deps.Requirement(module, PROBE_DIST, "a package built by the test", dist=PROBE_DIST, min_version="0.1")
    return install_mod.InstallDialog(requirements=[req], target_dir=target, python=sys.executable,
                                     extra_args=extra)


class StalledIndex:
    """A TCP server that accepts connections and never answers: a package index stuck mid-request."""

    def __init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.connections: List[socket.socket] = []
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/simple"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.connections:
            conn.close()


# --------------------------------------------------------------------------- the dialog, with real pip


def test_install_dialog_installs_a_local_wheel_into_the_target_folder(
        clean_qgis: Any, hermetic_pip: None, probe: str, install_mod: ModuleType, deps: ModuleType,
        qh: Any, tmp_path: Path):
    wheels = tmp_path / "wheels"
    build_wheel(wheels, probe)
    target = tmp_path / "deps"
    dialog = _dialog(install_mod, deps, probe, target, ["--no-index", "--find-links", str(wheels)])
    installed: List[Any] = []
    dialog.installed.connect(installed.append)
    try:
        assert dialog.report.missing_names == [probe]
        assert dialog.checkboxes[0].isChecked()  # a missing required package is ticked for install
        shown = dialog.shown_commands()
        assert len(shown) == 1 and "--no-index" in shown[0] and str(target) in shown[0]
        assert dialog.outcome is None and not target.exists()  # nothing runs before Install is pressed

        dialog.install_button.click()
        assert dialog.is_running() and not dialog.install_button.isEnabled() and dialog.cancel_button.isEnabled()
        assert qh.wait_until(lambda: dialog.outcome is not None, 180), dialog.log_view.toPlainText()

        log = dialog.log_view.toPlainText()
        assert dialog.outcome.status == install_mod.SUCCEEDED, (dialog.outcome.message, log)
        assert log.startswith(f"$ {sys.executable} -m pip install --target {target}")
        assert [ln[2:] for ln in log.splitlines() if ln.startswith("$ ")] == shown  # shown = run, exactly
        assert f"Successfully installed {PROBE_DIST}-0.1" in log  # pip's own output reached the log
        assert "import correctly" in dialog.status_label.text()
        assert (target / probe / "__init__.py").is_file()
        assert str(target) in sys.path  # the dialog made it usable in this session at once
        assert len(installed) == 1 and installed[0].status(probe).ok and installed[0].status(probe).version == "0.1"
        assert dialog.install_button.isEnabled() and not dialog.cancel_button.isEnabled()
        assert not dialog.checkboxes[0].isChecked()  # the refreshed dialog no longer proposes it
    finally:
        dialog.shutdown()
        dialog.deleteLater()

    # importable by a fresh Python from the target folder alone
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.append({str(target)!r}); import {probe}; "
                          f"print({probe}.__file__, {probe}.VERSION)"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    file, version = out.stdout.split()
    assert Path(file).parent == target / probe and version == "0.1"


def test_install_dialog_cancels_a_stalled_pip_and_installs_nothing(
        clean_qgis: Any, hermetic_pip: None, probe: str, install_mod: ModuleType, deps: ModuleType,
        qh: Any, tmp_path: Path):
    index = StalledIndex()
    target = tmp_path / "deps"
    dialog = _dialog(install_mod, deps, probe, target,
                     ["--index-url", index.url, "--timeout", "120", "--retries", "0"])
    finished: List[Any] = []
    dialog.installFinished.connect(finished.append)
    try:
        assert dialog.start_install()
        # pip is inside its request to the index: the moment a real download would be cancelled
        assert qh.wait_until(lambda: bool(index.connections), 90), dialog.log_view.toPlainText()
        assert dialog.is_running() and dialog.outcome is None
        dialog.cancel_button.click()
        assert qh.wait_until(lambda: dialog.outcome is not None, 30)
        assert dialog.outcome.status == install_mod.CANCELLED
        assert not dialog.is_running()
        assert finished == [dialog.outcome]
        assert "cancelled" in dialog.status_label.text().lower()
        assert dialog.install_button.isEnabled() and not dialog.cancel_button.isEnabled()
        assert list(target.iterdir()) == []  # pip --target copies only at its very end
        assert deps.check_requirement(dialog.requirements[0]).problem is not None
    finally:
        dialog.shutdown()
        dialog.deleteLater()
        index.close()


def test_install_dialog_explains_a_failed_pip_run(
        clean_qgis: Any, hermetic_pip: None, probe: str, install_mod: ModuleType, deps: ModuleType,
        qh: Any, tmp_path: Path):
    empty = tmp_path / "no_wheels"
    empty.mkdir()
    dialog = _dialog(install_mod, deps, probe, tmp_path / "deps", ["--no-index", "--find-links", str(empty)])
    try:
        assert dialog.start_install()
        assert qh.wait_until(lambda: dialog.outcome is not None, 180)
        assert dialog.outcome.status == install_mod.FAILED and dialog.outcome.exit_code not in (0, None)
        assert f"pip found no version of {PROBE_DIST}" in dialog.status_label.text()
        assert "Traceback" not in dialog.status_label.text()
    finally:
        dialog.shutdown()
        dialog.deleteLater()


def test_install_dialog_refuses_an_interpreter_that_does_not_exist(
        clean_qgis: Any, probe: str, install_mod: ModuleType, deps: ModuleType, tmp_path: Path):
    dialog = _dialog(install_mod, deps, probe, tmp_path / "deps", [])
    try:
        dialog.python_edit.setText(str(tmp_path / "no_python"))
        assert not dialog.start_install()
        assert not dialog.is_running()
        assert "does not exist" in dialog.status_label.text()
        assert not (tmp_path / "deps").exists()
    finally:
        dialog.deleteLater()


# --------------------------------------------------------------------------- ui/deps.py, pure logic


def test_check_dependencies_reports_found_missing_broken_and_old(deps: ModuleType, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "s2sr_broken_mod.py").write_text("raise OSError('libtorch_cpu.so: cannot open shared object')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reqs = [
        deps.Requirement("json", "json", "stdlib"),
        deps.Requirement("s2sr_no_such_module", "s2sr-no-such", "absent"),
        deps.Requirement("s2sr_broken_mod", "s2sr-broken", "present but broken"),
        deps.Requirement("pytest", "pytest>=999", "too old", dist="pytest", min_version="999"),
        deps.Requirement("s2sr_no_optional", "s2sr-opt", "absent but optional", optional=True),
    ]
    shallow = deps.check_dependencies(reqs, deep=False)
    assert shallow.missing_names == ["s2sr_no_such_module", "pytest"]  # shallow cannot see the broken import
    assert shallow.status("s2sr_no_such_module").problem == "not installed (pip package 's2sr-no-such')"
    assert "too old" in shallow.status("pytest").problem
    assert [s.name for s in shallow.missing_optional] == ["s2sr_no_optional"]
    deep = deps.check_dependencies(reqs, deep=True)
    assert deep.missing_names == ["s2sr_no_such_module", "s2sr_broken_mod", "pytest"]
    assert "fails to import (OSError: libtorch_cpu.so" in deep.status("s2sr_broken_mod").problem
    assert not deep.ok and "s2sr_no_such_module: not installed" in deep.summary()
    assert deps.check_dependencies(reqs[:1]).ok


def test_version_at_least(deps: ModuleType) -> None:
    assert deps.version_at_least("2.1.0+cpu", "2.1")
    assert deps.version_at_least("0.10", "0.3.3")
    assert not deps.version_at_least("0.3.2", "0.3.3")
    assert not deps.version_at_least("1.13.1", "2.1")


def test_pip_command_installs_into_the_target_for_the_given_python(deps: ModuleType, pipmod: ModuleType,
                                                                  tmp_path: Path):
    target = tmp_path / "deps"
    cmd = pipmod.pip_command(["torch>=2.1", "pyyaml>=6.0"], target, ["--no-index"], python="/opt/py/bin/python3",
                           constraints_file=tmp_path / "c.txt")
    assert cmd[:4] == ["/opt/py/bin/python3", "-m", "pip", "install"]
    assert cmd[cmd.index("--target") + 1] == str(target)
    assert {"--upgrade", "--no-input"} <= set(cmd)
    assert cmd[cmd.index("--constraint") + 1] == str(tmp_path / "c.txt")
    assert cmd[-3:] == ["--no-index", "torch>=2.1", "pyyaml>=6.0"]
    with pytest.raises(deps.DepsError, match="nothing to install"):
        pipmod.pip_command([], target, python="/opt/py/bin/python3")


def test_numpy_is_pinned_below_2_only_beside_numpy_1(pipmod: ModuleType):
    assert pipmod.numpy_constraints(lambda _dist: "1.26.4") == ["numpy<2"]
    assert pipmod.numpy_constraints(lambda _dist: "2.1.0") == []
    assert pipmod.numpy_constraints(lambda _dist: None) == []


def test_deps_dir_is_per_profile_and_python_version(deps: ModuleType, tmp_path: Path):
    from qgis.core import QgsApplication

    assert deps.deps_dir_for(tmp_path, (3, 12)) == tmp_path / "python" / "dependencies" / "s2_taskdriven_sr" / "py312"
    expected = deps.deps_dir_for(Path(QgsApplication.qgisSettingsDirPath()), sys.version_info[:2])
    assert deps.plugin_deps_dir() == expected


def test_activate_deps_dir_appends_once_and_only_existing_folders(deps: ModuleType, tmp_path: Path):
    path = ["/usr/lib/python3/dist-packages"]
    assert not deps.activate_deps_dir(tmp_path / "absent", path)
    assert path == ["/usr/lib/python3/dist-packages"]
    assert deps.activate_deps_dir(tmp_path, path)
    assert deps.activate_deps_dir(tmp_path, path)
    assert path == ["/usr/lib/python3/dist-packages", str(tmp_path)]  # appended (QGIS's packages win), once


def _dist(site: Path, name: str, version: str) -> None:
    """A real installed distribution: its package and its .dist-info, as pip lays them out."""
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text(f"VERSION = {version!r}\n")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")


def test_a_package_the_system_has_too_old_is_found_in_the_folder_first_numpy_never(deps: ModuleType,
                                                                                     tmp_path: Path):
    """Issue 21: with the installer's folder alone, Debian's sympy 1.11 shadowed the 1.13 PyTorch needs."""
    system, folder = tmp_path / "system", tmp_path / "py311"
    _dist(system, "fakesympy", "1.11")
    _dist(folder, "fakesympy", "1.13")
    _dist(system, "numpy", "1.24.2")
    _dist(folder, "numpy", "1.26.4")  # newer, but QGIS's compiled modules are built against the system's
    _dist(folder, "onlyhere", "1.0")  # the system lacks it: the plain append finds it
    path, meta = [str(system)], []
    assert deps.activate_deps_dir(folder, path, meta)
    assert path == [str(system), str(folder)]
    assert len(meta) == 1 and meta[0].names == {"fakesympy"}
    assert Path(meta[0].find_spec("fakesympy").origin).parent.parent == folder
    assert meta[0].find_spec("numpy") is None and meta[0].find_spec("onlyhere") is None
    assert deps.activate_deps_dir(folder, path, meta) and len(meta) == 1  # once


@pytest.mark.parametrize("output, expected", [
    ("/usr/bin/python3: No module named pip", "pip is not available for this Python"),
    ("ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device", "disk is full"),
    ("ERROR: [Errno 13] Permission denied: '/opt/x'", "no permission to write"),
    ("WARNING: Retrying ... NewConnectionError('Failed to establish a new connection')",
     "package index could not be reached"),
    ("ERROR: No matching distribution found for torch>=2.1", "pip found no version of torch>=2.1"),
    ("Collecting x\nERROR: something unexpected happened\n", "pip failed (exit code 2): ERROR: something unexpected"),
    ("", "pip failed (exit code 2). The log above"),
])
def test_explain_pip_failure(pipmod: ModuleType, output: str, expected: str):
    assert expected in pipmod.explain_pip_failure(output, 2)


def test_find_python_interpreter_where_qgis_keeps_it(interp: ModuleType):
    osgeo4w = r"C:\OSGeo4W\apps\Python39"
    files = {"/usr/bin/python3.11", str(Path(osgeo4w) / "python.exe")}

    def find(**kw: Any) -> Any:  # each candidate "runs" and says it is the version asked for
        version = tuple(kw["version"]) + (0,)
        return interp.find_python_interpreter(isfile=files.__contains__, which=lambda _name: None,
                                              prefix=kw.pop("prefix", kw["base_prefix"]),
                                              probe=lambda _path: version, **kw)

    # inside QGIS sys.executable is QGIS itself: the interpreter is found beside the base prefix
    assert find(executable="/usr/bin/qgis", base_prefix="/usr", platform="linux",
                version=(3, 11)) == Path("/usr/bin/python3.11")
    assert find(executable=r"C:\OSGeo4W\bin\qgis-bin.exe", base_prefix=osgeo4w, platform="win32",
                version=(3, 9)) == Path(osgeo4w) / "python.exe"
    assert find(executable="/usr/bin/qgis", base_prefix="/nowhere", platform="linux", version=(3, 11)) is None
    assert interp.find_python_interpreter(executable=sys.executable) == Path(sys.executable)


def test_module_command_runs_a_module_from_the_deps_folder_after_site_packages(interp: ModuleType, tmp_path: Path):
    """The trainer child process must load the same numpy as QGIS: the plugin's folder comes last."""
    (tmp_path / "s2sr_where.py").write_text(
        "import json, sys\nimport pytest\nprint(json.dumps([sys.path, pytest.__file__, sys.argv[1:]]))\n")
    (tmp_path / "pytest.py").write_text("raise SystemExit('the plugin folder shadowed an installed package')\n")
    cmd = interp.module_command("s2sr_where", ["--flag", "x"], python=sys.executable, deps_dir=tmp_path)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path.parent)
    assert out.returncode == 0, out.stderr
    path, pytest_file, args = json.loads(out.stdout)
    assert path[-1] == str(tmp_path) and path.count(str(tmp_path)) == 1
    assert Path(pytest_file).parent != tmp_path
    assert args == ["--flag", "x"]


def test_deps_module_works_in_a_python_without_qgis(tmp_path: Path):
    """``__init__.py`` uses it while QGIS starts and the headless CLI may too: no QGIS import is allowed.

    ``deps.py`` loads on its own (no sibling import); the interpreter finder,
    imported as part of its package, works without QGIS too.
    """
    code = (
        "import importlib.util, sys, types\n"
        "sys.modules['qgis'] = None\n"
        f"spec = importlib.util.spec_from_file_location('deps', {str(ROOT / 'ui' / 'install' / 'deps.py')!r})\n"
        "deps = sys.modules['deps'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(deps)\n"
        "assert deps.plugin_deps_dir() is None\n"
        "pkg = types.ModuleType('inst'); pkg.__path__ = "
        f"[{str(ROOT / 'ui' / 'install')!r}]; sys.modules['inst'] = pkg\n"
        "import inst.interpreter as interpreter\n"
        "assert interpreter.configured_interpreter() is None\n"
        "report = deps.check_dependencies([deps.Requirement('s2sr_nope', 's2sr-nope', 'x')])\n"
        "print(report.missing_names)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['s2sr_nope']"


# --------------------------------------------------------------------------- QGIS's interpreter, checked by running it


def _other_minor() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1] - 1 if sys.version_info[1] > 0 else 99}.7"


def _this_version(micro: int = None) -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2] if micro is None else micro}"


def test_an_interpreter_is_run_and_refused_when_its_version_is_not_qgis_s(interp: ModuleType, deps: ModuleType,
                                                                          tmp_path: Path):
    qgis = ".".join(map(str, sys.version_info[:3]))
    other = fake_python(tmp_path / "other" / "python3", _other_minor())
    with pytest.raises(deps.DepsError) as err:
        interp.check_interpreter(other)
    assert f"is Python {_other_minor()}, but QGIS runs Python {qgis}" in str(err.value)  # both versions named
    same = fake_python(tmp_path / "same" / "python3", _this_version(micro=99))
    assert interp.check_interpreter(same) == (*sys.version_info[:2], 99)  # same series: its wheels load
    assert interp.check_interpreter(sys.executable) == tuple(sys.version_info[:3])
    with pytest.raises(deps.DepsError, match="does not exist"):
        interp.check_interpreter(tmp_path / "missing")
    silent = tmp_path / "not_python"
    silent.write_text("#!/bin/sh\necho 'hello'\n")
    silent.chmod(0o755)
    with pytest.raises(deps.DepsError, match="did not run as a Python interpreter"):
        interp.check_interpreter(silent)


def test_qgis_python_beats_a_shim_of_another_build_on_path(interp: ModuleType, tmp_path: Path):
    """Inside QGIS ``sys.executable`` is QGIS itself; ``python3.X`` on PATH may be a pyenv shim of another build."""
    major, minor = sys.version_info[:2]
    base = tmp_path / "usr"
    qgis_python = fake_python(base / "bin" / f"python{major}.{minor}", _this_version())
    shim = fake_python(tmp_path / "pyenv" / "shims" / f"python{major}.{minor}", _this_version(micro=99))
    found = interp.find_python_interpreter(executable="/usr/bin/qgis", base_prefix=str(base), prefix=str(base),
                                           platform="linux", which=lambda _name: str(shim))
    assert found == qgis_python
    # without QGIS's own, the shim of the same series is the best there is; one of another series never
    qgis_python.unlink()
    assert interp.find_python_interpreter(executable="/usr/bin/qgis", base_prefix=str(base), prefix=str(base),
                                          platform="linux", which=lambda _name: str(shim)) == shim
    wrong = fake_python(tmp_path / "wrong" / f"python{major}.{minor}", _other_minor())
    assert interp.find_python_interpreter(executable="/usr/bin/qgis", base_prefix=str(base), prefix=str(base),
                                          platform="linux", which=lambda _name: str(wrong)) is None


def test_candidates_on_windows_and_macos(interp: ModuleType):
    win = interp.interpreter_candidates(
        executable=r"C:\OSGeo4W\bin\qgis-bin.exe", base_prefix=r"C:\OSGeo4W\apps\Python312",
        prefix=r"C:\OSGeo4W\apps\Python312", platform="win32", version=(3, 12),
        environ={"OSGEO4W_ROOT": r"C:\OSGeo4W"}, which=lambda _name: None)
    names = [str(p) for p in win]
    assert names[0] == str(Path(r"C:\OSGeo4W\apps\Python312") / "python.exe")  # sys.prefix\python.exe first
    for expected in (Path(r"C:\OSGeo4W") / "bin" / "python3.exe", Path(r"C:\OSGeo4W") / "bin" / "python-qgis.bat"):
        assert str(expected) in names
    assert not any("python3.12" in n for n in names)  # no Unix names on Windows
    mac_exe = "/Applications/QGIS.app/Contents/MacOS/QGIS"
    mac = interp.interpreter_candidates(executable=mac_exe, base_prefix="/Applications/QGIS.app/Contents/Frameworks",
                                        prefix="/Applications/QGIS.app/Contents/Frameworks", platform="darwin",
                                        version=(3, 12), environ={}, which=lambda _name: None)
    assert mac[:2] == [Path("/Applications/QGIS.app/Contents/MacOS/bin/python3.12"),
                       Path("/Applications/QGIS.app/Contents/MacOS/bin/python3")]
    found = interp.find_python_interpreter(
        executable=mac_exe, base_prefix="/Applications/QGIS.app/Contents/Frameworks",
        prefix="/Applications/QGIS.app/Contents/Frameworks", platform="darwin", version=(3, 12, 4), environ={},
        isfile=lambda p: p == "/Applications/QGIS.app/Contents/MacOS/bin/python3", which=lambda _name: None,
        probe=lambda _p: (3, 12, 4))
    assert found == Path("/Applications/QGIS.app/Contents/MacOS/bin/python3")


def test_cpu_index_serves_torch_and_torchvision_only(deps: ModuleType, pipmod: ModuleType, tmp_path: Path):
    by = {r.module: r for r in deps.REQUIREMENTS}
    chosen = [by["torch"], by["segmentation_models_pytorch"], by["yaml"]]
    plan = pipmod.plan_install(chosen, tmp_path / "target", tmp_path / "work", python="/opt/py/bin/python3",
                               cpu_wheels=True, pins=["numpy<2"], companions=deps.REQUIREMENTS)
    download, install = plan.commands
    # the versions requirements.txt pins (issue 21: the installer asked for "torch>=2.1" and got the newest)
    pins = pipmod.requirement_specs()
    torch, vision, smp = pins["torch"], pins["torchvision"], pins["segmentation-models-pytorch"]
    assert torch.startswith("torch==") and vision.startswith("torchvision==") and "==" in smp
    assert download[:4] == ["/opt/py/bin/python3", "-m", "pip", "download"]
    assert download[download.index("--index-url") + 1] == pipmod.TORCH_CPU_INDEX
    assert download[-2:] == [torch, vision] and "--no-deps" in download
    assert install[:4] == ["/opt/py/bin/python3", "-m", "pip", "install"]
    assert pipmod.TORCH_CPU_INDEX not in install and "--index-url" not in install  # everything else: PyPI
    assert install[install.index("--find-links") + 1] == str(plan.wheelhouse)
    assert install[install.index("--constraint") + 1] == str(plan.constraints)
    assert install[-4:] == [torch, smp, pins["pyyaml"], vision]
    # the constraints pin the CPU builds that step 1 downloaded
    plan.wheelhouse.mkdir(parents=True)
    (plan.wheelhouse / "torch-2.5.1+cpu-cp312-cp312-linux_x86_64.whl").write_bytes(b"")
    (plan.wheelhouse / "torchvision-0.20.1+cpu-cp312-cp312-linux_x86_64.whl").write_bytes(b"")
    assert pipmod.write_constraints(plan).split() == ["numpy<2", "torch==2.5.1+cpu", "torchvision==0.20.1+cpu"]
    assert plan.constraints.read_text().split() == ["numpy<2", "torch==2.5.1+cpu", "torchvision==0.20.1+cpu"]
    # no CPU wheels asked for, or no torch chosen: one install command, no CPU index anywhere
    for cpu, picks in ((False, chosen), (True, [by["yaml"]])):
        plain = pipmod.plan_install(picks, tmp_path / "target", tmp_path / "work", python="/opt/py/bin/python3",
                                    cpu_wheels=cpu, companions=deps.REQUIREMENTS)
        assert len(plain.commands) == 1 and pipmod.TORCH_CPU_INDEX not in plain.commands[0]
        assert plain.commands[0][3] == "install" and "--find-links" not in plain.commands[0]
    # a requirement requirements.txt does not pin keeps its own floor; without the file, every floor
    assert pipmod.pinned_spec(by["rasterio"]) == by["rasterio"].pip
    assert pipmod.pinned_spec(by["torch"], pipmod.requirement_specs(tmp_path / "none.txt")) == by["torch"].pip


def test_install_dialog_refuses_an_interpreter_of_another_python_version(
        clean_qgis: Any, probe: str, install_mod: ModuleType, deps: ModuleType, tmp_path: Path):
    other = fake_python(tmp_path / "py" / "python3", _other_minor())
    dialog = _dialog(install_mod, deps, probe, tmp_path / "deps", [])
    try:
        dialog.python_edit.setText(str(other))
        assert dialog.shown_commands()[0].startswith(f"{other} -m pip install")  # shown: it is what would run
        assert not dialog.start_install()
        assert not dialog.is_running() and dialog.log_view.toPlainText() == ""
        text = dialog.status_label.text()
        assert _other_minor() in text and ".".join(map(str, sys.version_info[:3])) in text, text
        assert not (tmp_path / "deps").exists()
    finally:
        dialog.shutdown()
        dialog.deleteLater()


def test_install_dialog_runs_exactly_the_commands_it_shows_cpu_wheels_first(
        clean_qgis: Any, hermetic_pip: None, probe: str, install_mod: ModuleType, deps: ModuleType,
        qh: Any, tmp_path: Path):
    """A package marked for CPU wheels comes from the CPU source; the shown commands are the ones run."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the CPU-only wheel choice is offered on Linux")
    pypi, cpu = tmp_path / "pypi", tmp_path / "cpu"
    build_wheel(pypi, probe, "0.2")
    build_wheel(cpu, probe, "0.2+cpu")
    target = tmp_path / "deps"
    req = deps.Requirement(probe, PROBE_DIST, "a package built by the test", dist=PROBE_DIST, cpu_wheels=True)
    dialog = install_mod.InstallDialog(requirements=[req], target_dir=target, python=sys.executable,
                                       extra_args=["--no-index", "--find-links", str(pypi)],
                                       cpu_source=["--no-index", "--find-links", str(cpu)])
    try:
        assert dialog.cpu_torch.isChecked()
        shown = dialog.shown_commands()  # before the dialog is ever shown on screen
        assert len(shown) == 2, shown
        assert shown[0].startswith(f"{sys.executable} -m pip download") and str(cpu) in shown[0]
        assert shown[1].startswith(f"{sys.executable} -m pip install --target {target}") and str(cpu) not in shown[1]
        assert dialog.start_install()
        assert qh.wait_until(lambda: dialog.outcome is not None, 180), dialog.log_view.toPlainText()
        log = dialog.log_view.toPlainText()
        assert dialog.outcome.status == install_mod.SUCCEEDED, (dialog.outcome.message, log)
        assert [ln[2:] for ln in log.splitlines() if ln.startswith("$ ")] == shown  # run = shown, in order
        assert f"{PROBE_DIST.replace('-', '_')}==0.2+cpu" in log.replace("-", "_")  # the pin step 2 got
        assert f"Successfully installed {PROBE_DIST}-0.2+cpu" in log
        metadata = next(target.glob("*.dist-info")) / "METADATA"
        assert "Version: 0.2+cpu" in metadata.read_text()
    finally:
        dialog.shutdown()
        dialog.deleteLater()
