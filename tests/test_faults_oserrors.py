"""Issue 14: bad paths, permission problems, a full disk, a folder where a file is expected
are one-line errors naming the thing and the fix -- never "unexpected <Exception>"."""

import errno

import cv2
import numpy as np
import pytest

from pifocus import cli


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    lines = [ln for ln in err if ln.startswith("pifocus:")]
    assert len(lines) == 1, err
    assert "unexpected" not in lines[0]
    return lines[0]


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), np.zeros((48, 64), np.uint8))
    return d


def test_heatmap_under_a_file(capsys, tmp_path, images):
    (tmp_path / "f").write_text("x")
    rc = cli.main(["score", str(images), "--no-cnn", "--heatmap", str(tmp_path / "f" / "maps")])
    line = _one_line(capsys)
    assert rc == 2 and "f/maps" in line and "not a folder" in line


def test_record_out_is_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    rc = cli.main(["record", "--source", "sim", "--size", "160x120", "--frames", "1", "--out", str(tmp_path / "f")])
    line = _one_line(capsys)
    assert rc == 2 and str(tmp_path / "f") in line


def test_heatmap_write_failure_is_not_silent(capsys, tmp_path, images, monkeypatch):
    monkeypatch.setattr(cv2, "imencode", lambda *a, **k: (False, None))
    rc = cli.main(["score", str(images), "--no-cnn", "--heatmap", str(tmp_path / "maps")])
    line = _one_line(capsys)
    assert rc == 2 and "a_heatmap.jpg" in line


def test_heatmap_disk_full_is_named(capsys, tmp_path, images, monkeypatch):
    from pifocus import storage
    real = storage.os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(storage.os, "replace", full)
    rc = cli.main(["score", str(images), "--no-cnn", "--heatmap", str(tmp_path / "maps")])
    monkeypatch.setattr(storage.os, "replace", real)
    line = _one_line(capsys)
    assert rc != 0 and "a_heatmap.jpg" in line and "disk full" in line.lower()
    assert not list((tmp_path / "maps").glob("*.part"))


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "no space left"), (errno.EACCES, "permission denied"),
    (errno.EISDIR, "is a folder where a file is expected"), (errno.EROFS, "read-only"),
])
def test_os_errors_from_any_command_are_one_line(capsys, monkeypatch, code, words):
    from pifocus.commands import bench

    def fail(args, console):
        raise OSError(code, "boom", "/some/file")
    monkeypatch.setattr(bench, "run", fail)
    rc = cli.main(["bench", "--source", "sim"])
    line = _one_line(capsys)
    assert rc == 2 and "/some/file" in line and words in line
