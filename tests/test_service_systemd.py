"""systemd/: the unit passes ``systemd-analyze verify`` and the installer is sound.

The verify test skips when ``systemd-analyze`` is absent (Debian package ``systemd``).  The
unit's ExecStart points at the venv on a Pi; the test rewrites it to a stand-in executable
so verify can check it exists.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "pifocus.service"
INSTALL = ROOT / "systemd" / "install.sh"


def _directives(text: str) -> dict:
    d = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
        if m:
            d.setdefault(m.group(1), []).append(m.group(2))
    return d


def test_unit_has_what_the_service_needs():
    d = _directives(UNIT.read_text())
    one = {k: v[-1] for k, v in d.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert int(one["WatchdogSec"]) >= 5
    assert one["Restart"] == "on-failure"
    assert one["User"] == "pifocus"
    assert set(one["SupplementaryGroups"].split()) >= {"video", "gpio"}
    assert one["StateDirectory"] == "pifocus" and one["WorkingDirectory"] == "/var/lib/pifocus"
    assert one["ConfigurationDirectory"] == "pifocus"
    assert "--config /etc/pifocus/pifocus.toml" in one["ExecStart"] and " serve " in one["ExecStart"]
    assert "HUP" in one["ExecReload"]
    # Hardening must not hide the camera, dma_heap, gpiochip or vchiq nodes.
    assert "PrivateDevices" not in d or one["PrivateDevices"].lower() in ("no", "false", "0")
    assert "DevicePolicy" not in d or one["DevicePolicy"] == "auto"
    assert one["NoNewPrivileges"] == "yes" and one["ProtectSystem"] == "strict"


def test_unit_verifies(tmp_path):
    sa = shutil.which("systemd-analyze")
    if sa is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    fake = tmp_path / "bin" / "pifocus"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    unit = tmp_path / "pifocus.service"
    text = UNIT.read_text()
    assert "/opt/pifocus/venv/bin/pifocus" in text
    unit.write_text(text.replace("/opt/pifocus/venv/bin/pifocus", str(fake)))
    r = subprocess.run([sa, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines()
                if "pifocus.service" in ln or "Unknown" in ln or "rror" in ln]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_install_script_syntax_and_dry_run():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not installed")
    assert subprocess.run([bash, "-n", str(INSTALL)]).returncode == 0
    r = subprocess.run([bash, str(INSTALL), "--dry-run"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "python3 -m venv --system-site-packages /opt/pifocus/venv" in out or "/opt/pifocus/venv" in out
    assert "/etc/pifocus/pifocus.toml" in out
    assert "systemctl enable --now pifocus.service" in out
    r = subprocess.run([bash, str(INSTALL), "--bogus"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "unknown option" in r.stderr
