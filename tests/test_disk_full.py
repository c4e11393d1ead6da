"""Issue 14, item 3: a full disk leaves valid files and a clear error, never a partial file.

Two ways: a monkeypatched write/fsync raising ``OSError(ENOSPC)`` (runs everywhere) and a
real 2 MB tmpfs (root only; skipped cleanly when mounting is not permitted).
"""

import csv
import errno
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest

from pifocus import config as cfgmod
from pifocus import storage
from pifocus.cli import main
from pifocus.exc import StorageError
from pifocus.service import SdNotifier, Service
from service_toml import SIM_SERVICE_BASE

SIM = ["--source", "sim", "--size", "320x240"]


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def check_recording(folder: Path):
    """The folder is a valid replay folder: sweep.csv lists exactly the (decodable) images,
    and no partial or temporary file is left."""
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.endswith((".part", ".tmp")) or n.startswith(".")], names
    assert "sweep.csv" in names
    with open(folder / "sweep.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:2] == ["file", "position"]
    listed = [r[0] for r in rows[1:]]
    assert sorted(listed) == sorted(n for n in names if n != "sweep.csv")
    for n in listed:
        assert cv2.imread(str(folder / n), cv2.IMREAD_UNCHANGED) is not None, n
    return len(listed)


def _one_error_line(err: str, *words):
    lines = [l for l in err.splitlines() if l.startswith("pifocus: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "unexpected" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# -- the storage helper -------------------------------------------------------------------------
def test_atomic_write_partial_write_then_enospc(tmp_path, monkeypatch):
    target = tmp_path / "a.png"
    target.write_bytes(b"old")
    calls = []

    def short_then_full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return os.write(fd, bytes(data[:10]))  # a short write, then the disk is full
        _enospc()

    monkeypatch.setattr(storage, "_os_write", short_then_full)
    with pytest.raises(StorageError) as e:
        storage.atomic_write(target, b"x" * 1000)
    assert e.value.disk_full and "disk full" in str(e.value) and str(target) in str(e.value)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_atomic_write_other_errors_name_the_path(tmp_path):
    with pytest.raises(StorageError) as e:
        storage.atomic_write(tmp_path / "no" / "such" / "dir.png", b"x")
    assert not e.value.disk_full and "no/such/dir.png" in str(e.value)


# -- pifocus record -------------------------------------------------------------------------------
@pytest.mark.parametrize("fail_at", [1, 2, 4, 7])
def test_record_enospc_is_one_line_and_leaves_a_valid_folder(capsys, tmp_path, monkeypatch, fail_at):
    """fsync number ``fail_at`` fails: the first is sweep.csv's header (new code) or frame 0,
    then frames and sweep.csv alternate."""
    real = os.fsync
    n = {"calls": 0}

    def fsync(fd):
        n["calls"] += 1
        if n["calls"] >= fail_at:
            _enospc()
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(storage, "_os_fsync", fsync)
    out = tmp_path / "rec"
    code, _, err = run_cli(capsys, "record", *SIM, "--frames", "10", "--out", str(out))
    assert code == 2, err
    _one_error_line(err, "disk full", str(out))
    monkeypatch.undo()
    if fail_at > 1:
        check_recording(out)


# -- /api/capture -------------------------------------------------------------------------------------
TOML = SIM_SERVICE_BASE + """\
[web]
port = 0
max_fps = 0
captures_dir = "{captures}"
"""


def _service(tmp_path, captures):
    p = tmp_path / "pifocus.toml"
    p.write_text(TOML.format(captures=captures))
    s = Service(cfgmod.load(p), notifier=SdNotifier(""), outputs_enabled=False)
    s.start()
    assert s.wait_ready(20)
    return s


def _capture(svc):
    req = urllib.request.Request(svc.web.url + "api/capture", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_capture_enospc_is_507_and_leaves_no_part(tmp_path, monkeypatch):
    caps = tmp_path / "captures"
    svc = _service(tmp_path, caps)
    try:
        st, d = _capture(svc)
        assert st == 201, d
        monkeypatch.setattr(os, "fsync", _enospc)
        monkeypatch.setattr(storage, "_os_fsync", _enospc)
        st, d = _capture(svc)
        assert st == 507, d
        assert d["ok"] is False and "disk full" in d["error"] and str(caps) in d["error"]
        assert not list(caps.glob("*.part"))
        assert len(list(caps.iterdir())) == 1
    finally:
        monkeypatch.undo()
        svc.shutdown()


# -- a real full disk: a 2 MB tmpfs ----------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs: {e}")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=10)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)


def _fill(folder: Path, leave: int = 0) -> None:
    """Fill the filesystem of ``folder`` (but ``leave`` bytes, roughly)."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize - leave
    with open(folder / "filler", "wb") as f:
        try:
            while free > 0:
                f.write(b"\0" * min(free, 65536))
                free -= 65536
            f.flush()
        except OSError:
            pass


def test_record_into_a_full_tmpfs(capsys, small_disk):
    out = small_disk / "rec"
    code, _, err = run_cli(capsys, "record", *SIM, "--frames", "400", "--out", str(out))
    assert code == 2, err
    _one_error_line(err, "disk full", str(out))
    n = check_recording(out)
    assert 0 < n < 400


def test_capture_into_a_full_tmpfs(tmp_path, small_disk):
    caps = small_disk / "captures"
    caps.mkdir()
    svc = _service(tmp_path, caps)
    try:
        _fill(small_disk, leave=4096)
        st, d = _capture(svc)
        assert st == 507, d
        assert "disk full" in d["error"] and str(caps) in d["error"]
        assert not [p for p in caps.iterdir()], list(caps.iterdir())
        (small_disk / "filler").unlink()
        deadline = time.monotonic() + 5
        st, d = _capture(svc)
        while st != 201 and time.monotonic() < deadline:
            time.sleep(0.1)
            st, d = _capture(svc)
        assert st == 201, d
    finally:
        svc.shutdown()
