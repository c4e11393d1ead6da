"""systemd/install.sh sets up a rig: the config it installs (picamera2, no drive unless asked),
its options, and the extras and pins it picks from the userland, not the kernel."""

import inspect
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pifocus import config as pconfig
from pifocus.sources.picamera2 import Picamera2Source

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "systemd" / "install.sh"
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="bash not installed")


def _run(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BASH, str(INSTALL), *args], capture_output=True, text=True, timeout=60, env=e)


def _installed_config(tmp_path, *args) -> pconfig.Config:
    r = _run("--print-config", *args)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "pifocus.toml"
    path.write_text(r.stdout)
    return pconfig.load(path), r.stdout


def test_default_config_is_a_rig_not_the_simulator(tmp_path):
    cfg, text = _installed_config(tmp_path)
    assert cfg.source.name == "picamera2"
    assert cfg.drive.name == "none"
    # Every [source] option left in is one the picamera2 source takes (realtime is sim-only).
    assert "realtime" not in cfg.source.options
    inspect.signature(Picamera2Source.__init__).bind(None, **cfg.source.options)
    # Nothing else of the documented example changed.
    example = (ROOT / "systemd" / "pifocus.toml").read_text().splitlines()
    changed = [a for a, b in zip(example, text.splitlines()) if a != b]
    assert len(changed) == 3 and len(example) == len(text.splitlines()), changed


def test_source_and_drive_options(tmp_path):
    cfg, _ = _installed_config(tmp_path, "--source", "picamera2:1", "--drive", "stepper")
    assert cfg.source.name == "picamera2:1" and cfg.drive.name == "stepper"
    cfg, _ = _installed_config(tmp_path, "--source", "sim", "--drive", "sim")
    assert cfg.source.name == "sim" and cfg.drive.name == "sim" and cfg.source.options.get("realtime") is True


@pytest.mark.parametrize("args, word", [
    (["--source", "picamera"], "--source picamera is not a source string; allowed: picamera2[:N]"),
    (["--source", "picamera2:x"], "allowed: picamera2[:N]"),
    (["--drive", "servo"], "--drive servo is not a drive; allowed: none (default), stepper"),
    (["--drive", "replay:rel/dir"], "replay:/ABSOLUTE/SWEEP/DIR"),
])
def test_bad_source_or_drive_is_refused(args, word):
    r = _run("--print-config", *args)
    assert r.returncode != 0 and word in r.stderr, r.stderr


def test_help_names_the_new_options():
    r = _run("--help")
    assert r.returncode == 0
    for word in ("--source SRC", "--drive DRIVE", "--print-config", "[picamera2]", "[none]", "systemctl reload"):
        assert word in r.stdout, word


# -- the userland decides the extras --------------------------------------------------------------
def _fake_python(tmp_path, machine: str, bits: str, multiarch: str, numpy_version: str) -> Path:
    """An interpreter that reports another userland: the real Python with platform.machine(),
    platform.architecture(), sysconfig's MULTIARCH and numpy's version answered as a Pi with
    that userland would (apt's python3 + python3-numpy).  Runs ``-c CODE`` like python3."""
    p = tmp_path / f"python3-{machine}-{bits}"
    p.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import platform, sys, sysconfig, types
        platform.machine = lambda: {machine!r}
        platform.architecture = lambda *a, **k: ({bits!r}, "ELF")
        _real = sysconfig.get_config_var
        sysconfig.get_config_var = lambda n: {multiarch!r} if n == "MULTIARCH" else _real(n)
        sys.modules["numpy"] = types.SimpleNamespace(__version__={numpy_version!r})
        assert sys.argv[1] == "-c", sys.argv
        code = sys.argv[2]
        sys.argv = ["-c"] + sys.argv[3:]
        exec(compile(code, "<string>", "exec"), {{"__name__": "__main__"}})
        """))
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


def _dry_run(tmp_path, py, *args):
    r = _run("--dry-run", "--prefix", str(tmp_path / "opt"), *args, env={"PIFOCUS_INSTALL_PYTHON": str(py)})
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_32bit_userland_on_a_64bit_kernel_gets_tflite_runtime_and_apt_opencv(tmp_path):
    py = _fake_python(tmp_path, "aarch64", "32bit", "arm-linux-gnueabihf", "1.24.2")
    out = _dry_run(tmp_path, py, "--apt")
    assert "32-bit userland" in out
    pip = next(ln for ln in out.splitlines() if ln.startswith("+ ") and "pip install" in ln and str(ROOT) in ln)
    assert pip.endswith(f"{ROOT}[pi,tflite-runtime]"), pip
    apt = next(ln for ln in out.splitlines() if "apt-get install" in ln)
    assert "python3-opencv" in apt and "python3-picamera2" in apt


def test_64bit_pi_gets_pi_extra_and_the_pins_for_every_later_pip(tmp_path):
    py = _fake_python(tmp_path, "aarch64", "64bit", "aarch64-linux-gnu", "1.24.2")
    out = _dry_run(tmp_path, py, "--apt")
    c = tmp_path / "opt" / "constraints.txt"
    assert f"+ write {c}: numpy<1.25, opencv-python-headless<4.12" in out  # apt's 1.24 stays
    assert f"+ write {tmp_path / 'opt' / 'venv' / 'pip.conf'}: [global] constraint = {c}" in out
    pip = next(ln for ln in out.splitlines() if ln.startswith("+ ") and "pip install" in ln and str(ROOT) in ln)
    assert f"-c {c}" in pip and pip.endswith(f"{ROOT}[pi]"), pip
    assert "python3-opencv" not in next(ln for ln in out.splitlines() if "apt-get install" in ln)


def test_numpy_2_system_needs_no_pins_and_a_pc_no_pi_extra(tmp_path):
    py = _fake_python(tmp_path, "x86_64", "64bit", "x86_64-linux-gnu", "2.2.4")
    out = _dry_run(tmp_path, py)
    assert "constraints.txt" not in out
    pip = next(ln for ln in out.splitlines() if ln.startswith("+ ") and "pip install" in ln and str(ROOT) in ln)
    assert pip.endswith(str(ROOT)), pip


def test_the_dry_run_writes_the_rig_config(tmp_path):
    out = _dry_run(tmp_path, sys.executable, "--drive", "libcamera")
    assert '[source] name = "picamera2", [drive] name = "libcamera"' in out
    assert "edit /etc/pifocus/pifocus.toml for the rig" in out
