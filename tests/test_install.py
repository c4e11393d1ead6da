"""Install paths as they really are: setup.py's requirements per userland, the build backend,
one Python version statement, and the README's Raspberry Pi blocks being what
tools/pi_os_ci.sh runs."""

import platform
import re
import runpy
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SCRIPT = ROOT / "tools" / "pi_os_ci.sh"
BASH = shutil.which("bash")

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

packaging_markers = pytest.importorskip("packaging.markers")
from packaging.requirements import Requirement  # noqa: E402  (after the importorskip)


# -- setup.py: what each userland is asked to install ------------------------------------------
def _setup_kwargs(monkeypatch, machine=None, bits=None, multiarch=None) -> dict:
    """Run setup.py as pip's build backend does, with setuptools.setup recording its
    arguments, on an interpreter that reports ``machine`` / ``bits`` / ``multiarch``."""
    import setuptools
    got = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: got.update(kw))
    if machine is not None:
        monkeypatch.setattr(platform, "machine", lambda: machine)
    if bits is not None:
        monkeypatch.setattr(platform, "architecture", lambda *a, **k: (bits, "ELF"))
    if multiarch is not None:
        real = sysconfig.get_config_var
        monkeypatch.setattr(sysconfig, "get_config_var",
                            lambda name: multiarch if name == "MULTIARCH" else real(name))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    assert got, "setup.py did not call setup()"
    return got


def _selected(reqs, **env) -> set:
    """Names of the requirements whose markers hold in a pip environment with ``env``."""
    base = packaging_markers.default_environment()
    base.update(env)
    out = set()
    for r in map(Requirement, reqs):
        if r.marker is None or r.marker.evaluate(base):
            out.add(r.name)
    return out


# What pip sees on a Pi 4/5: the kernel is 64-bit whatever the userland, so platform_machine
# says aarch64 on both 64-bit and 32-bit Raspberry Pi OS.
PI_ENV = dict(platform_machine="aarch64", sys_platform="linux", python_version="3.11",
              python_full_version="3.11.2")


def test_32bit_userland_on_64bit_kernel_asks_for_no_aarch64_only_wheels(monkeypatch):
    kw = _setup_kwargs(monkeypatch, machine="aarch64", bits="32bit", multiarch="arm-linux-gnueabihf")
    need = _selected(kw["install_requires"], **PI_ENV)
    # PyPI has no armv7l wheels of these: OpenCV comes from apt, the interpreter from the extra.
    assert "ai-edge-litert" not in need and "opencv-python-headless" not in need, need
    assert {"numpy", "gpiozero"} <= need
    assert _selected(kw["extras_require"]["pi"], **PI_ENV) == {"lgpio"}
    assert "tflite-runtime" in _selected(kw["extras_require"]["tflite-runtime"], **PI_ENV)


@pytest.mark.parametrize("machine", ["armv7l", "armv8l"])
def test_32bit_userland_on_32bit_kernel_too(monkeypatch, machine):
    kw = _setup_kwargs(monkeypatch, machine=machine, bits="32bit", multiarch="arm-linux-gnueabihf")
    need = _selected(kw["install_requires"], **dict(PI_ENV, platform_machine=machine))
    assert "ai-edge-litert" not in need and "opencv-python-headless" not in need
    assert _selected(kw["extras_require"]["pi"], **dict(PI_ENV, platform_machine=machine)) == {"lgpio"}


def test_multiarch_alone_marks_a_32bit_userland(monkeypatch):
    # platform.architecture() can be fooled by an unusual executable; Debian's triplet cannot.
    kw = _setup_kwargs(monkeypatch, machine="aarch64", bits="64bit", multiarch="arm-linux-gnueabihf")
    assert "ai-edge-litert" not in _selected(kw["install_requires"], **PI_ENV)


def test_64bit_pi_gets_litert_opencv_and_lgpio(monkeypatch):
    kw = _setup_kwargs(monkeypatch, machine="aarch64", bits="64bit", multiarch="aarch64-linux-gnu")
    need = _selected(kw["install_requires"], **PI_ENV)
    assert {"numpy", "gpiozero", "opencv-python-headless", "ai-edge-litert"} <= need
    assert _selected(kw["extras_require"]["pi"], **PI_ENV) == {"lgpio"}


def test_pc_gets_litert_and_no_lgpio(monkeypatch):
    kw = _setup_kwargs(monkeypatch, machine="x86_64", bits="64bit", multiarch="x86_64-linux-gnu")
    env = dict(PI_ENV, platform_machine="x86_64")
    assert {"opencv-python-headless", "ai-edge-litert"} <= _selected(kw["install_requires"], **env)
    assert _selected(kw["extras_require"]["pi"], **env) == set()


def test_apt_opencv_46_is_accepted(monkeypatch):
    # Bookworm's python3-opencv is 4.6: no requirement may exclude it.
    kw = _setup_kwargs(monkeypatch, machine="x86_64", bits="64bit")
    for r in map(Requirement, kw["install_requires"]):
        if r.name == "opencv-python-headless":
            assert r.specifier.contains("4.6.0"), r


# -- one Python version statement, and a build backend -----------------------------------------
def test_python_310_everywhere(monkeypatch):
    kw = _setup_kwargs(monkeypatch)
    assert kw["python_requires"] == ">=3.10"
    assert "Programming Language :: Python :: 3.10" in kw["classifiers"]
    assert not any("3.9" in c for c in kw["classifiers"])
    # No marker still caters for a Python the package does not install on.
    reqs = kw["install_requires"] + [r for v in kw["extras_require"].values() for r in v]
    for r in map(Requirement, reqs):
        assert not re.search(r"python_version\s*[<>=]+\s*'3\.(9|10)'", str(r.marker or "")), r
    assert "Python 3.10+" in README and "3.9+" not in README
    assert "needs Python 3.10+" in README  # the Raspberry Pi section says it too


def test_pyproject_names_the_setuptools_backend():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    bs = data["build-system"]
    assert bs["build-backend"] == "setuptools.build_meta"
    assert any(r.startswith("setuptools") for r in bs["requires"])
    # PEP 660 editable installs (the README's `pip install -e ".[dev]"`) need setuptools >= 64.
    spec = next(Requirement(r) for r in bs["requires"] if r.startswith("setuptools")).specifier
    assert not spec.contains("63.9") and spec.contains("64.0")


# -- the README's Raspberry Pi blocks are what the emulated run runs ----------------------------
def _block(name: str) -> list:
    m = re.search(r"<!-- pi-os-ci: %s -->\s*\n\s*```sh\n(.*?)\n\s*```" % re.escape(name), README, re.S)
    assert m, f"README has no sh block after <!-- pi-os-ci: {name} -->"
    return [ln.strip() for ln in m.group(1).splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def plan():
    if BASH is None:
        pytest.skip("bash not installed")
    r = subprocess.run([BASH, str(SCRIPT), "--print-plan"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_the_emulated_run_is_the_readme_block(plan):
    arm64 = _block("arm64")
    venv = [ln for ln in arm64 if " -m venv " in ln]
    pip = [ln for ln in arm64 if "/bin/pip install" in ln]
    assert venv == ["python3 -m venv --system-site-packages ~/pifocus-venv"]
    assert len(pip) == 1
    # Exactly the README's lines, in the README's order, before the demo and the tests.
    for line in venv + pip:
        assert line in plan, (line, plan)
    assert plan.index(venv[0]) < plan.index(pip[0]) < plan.index("~/pifocus-venv/bin/pifocus run --source sim --frames 10")
    # The apt line: Debian's packages as written; only Raspberry Pi's own are left out, and said.
    apt = next(ln for ln in arm64 if ln.startswith("sudo apt install"))
    want = [p for p in apt.split()[3:] if not p.startswith("-")]
    got = next(ln for ln in plan if ln.startswith("apt-get install")).split()[5:]
    assert got == [p for p in want if p not in ("python3-picamera2", "python3-lgpio")]
    assert "python3-numpy" in got and "python3-venv" in got
    assert any(ln.startswith("#") and "python3-picamera2" in ln for ln in plan)


def test_the_demo_is_the_readmes(plan):
    demo = re.search(r"```sh\npip install \. && (pifocus run [^\n]+)\n```", README)
    assert demo, "README's two-command demo moved"
    # The README's demo, only shorter (a 2028x1520 frame takes seconds under emulation).
    shorter = re.sub(r"--frames \d+", "--frames 10", demo.group(1))
    assert "--frames 10" in shorter and "~/pifocus-venv/bin/" + shorter in plan


def test_the_tests_block_runs_after_the_install_and_keeps_numpy(plan):
    tests = _block("tests")
    for line in tests:
        line = line.replace("sudo apt install -y ", "apt-get install -y -q --no-install-recommends ")
        if " -m pytest" in line:  # the README's command, plus only the emulation deselections
            run = next(ln for ln in plan if " -m pytest" in ln)
            assert run.startswith(line + " ") and set(run[len(line):].split()[::2]) == {"--deselect"}, run
            continue
        assert line in plan, (line, plan)
    checks = [i for i, ln in enumerate(plan) if "numpy.__version__.startswith" in ln]
    pytest_at = next(i for i, ln in enumerate(plan) if " -m pytest" in ln)
    assert len(checks) == 2 and checks[-1] < pytest_at == len(plan) - 1


def test_every_pi_pip_line_keeps_apts_numpy():
    # "numpy<2" is not enough: the newest matplotlib then brings pip's numpy 1.26 over apt's 1.24.
    for name in ("arm64", "armhf", "tests"):
        for line in _block(name):
            if "/bin/pip install" in line:
                assert '"numpy<1.25"' in line, line
                if "opencv-python-headless" in line:
                    assert '"opencv-python-headless<4.12"' in line, line
    # Plots take matplotlib from apt on the Pi.
    pi = README[README.index("## Installing on a Raspberry Pi"):]
    assert "sudo apt install -y python3-matplotlib" in pi


def test_armhf_block_uses_apt_opencv_and_tflite_runtime():
    lines = _block("armhf")
    assert "python3-opencv" in next(ln for ln in lines if ln.startswith("sudo apt install"))
    pip = next(ln for ln in lines if "/bin/pip install" in ln)
    assert "tflite-runtime" in pip and "opencv-python-headless" not in pip


def test_the_script_prints_the_armhf_block_too():
    if BASH is None:
        pytest.skip("bash not installed")
    r = subprocess.run([BASH, str(SCRIPT), "--print-plan", "--arch", "armhf"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert next(ln for ln in _block("armhf") if "/bin/pip install" in ln) in r.stdout.splitlines()


def test_script_refuses_bad_options():
    if BASH is None:
        pytest.skip("bash not installed")
    for args, word in ((["--arch", "i386"], "arm64, armhf"), (["--tier", "half"], "full, runtime"),
                       (["--timeout-min", "soon"], "whole number"), (["--bogus"], "unknown option")):
        r = subprocess.run([BASH, str(SCRIPT), *args, "--print-plan"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2 and word in r.stderr, (args, r.stderr)


def test_script_skips_cleanly_where_it_cannot_run():
    # Not root: a skip (exit 3) with the reason, never a failure and never silence.
    setpriv = shutil.which("setpriv")
    if BASH is None or setpriv is None or not hasattr(__import__("os"), "geteuid"):
        pytest.skip("bash or setpriv missing")
    import os
    import tempfile
    # A copy the unprivileged user can read (a checkout under /root is not).
    top = Path(tempfile.mkdtemp(prefix="pi-os-ci-skip-"))
    try:
        (top / "tools").mkdir()
        shutil.copy(SCRIPT, top / "tools" / SCRIPT.name)
        shutil.copy(ROOT / "README.md", top / "README.md")
        for d in (top, top / "tools"):
            d.chmod(0o755)
        cmd = [BASH, str(top / "tools" / SCRIPT.name)]
        if os.geteuid() == 0:
            cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=str(top))
    finally:
        shutil.rmtree(top, ignore_errors=True)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "pi_os_ci: SKIP:" in r.stderr and "root" in r.stderr


def test_ci_runs_the_pi_os_script_and_only_skips_on_3():
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [ln.strip() for ln in ci.splitlines()]
    call = next(i for i, ln in enumerate(lines) if "tools/pi_os_ci.sh" in ln and not ln.startswith("#"))
    assert "|| PI_OS_RC=$?" in lines[call], "its status must be kept, not abort CI before the native suite"
    assert re.search(r"^\s*3\) .*skipped", ci, re.M), "a skip (exit 3) is reported and does not fail CI"
    # The native suite (the README's test command) runs after it, and a Pi failure fails CI.
    suite = lines.index("python -m pytest -q")
    assert call < suite
    assert any('PI_OS_RC" = 3' in ln and "exit 1" in ln for ln in lines[suite:])
