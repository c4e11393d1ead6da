"""Issue 14: special files (devices, FIFOs, directories) and huge files are refused as state
files, config files, sweep.csv and model metadata -- never replaced, never read without
bound, never waited on."""

import json
import os

import pytest

from pifocus import config as cfgmod
from pifocus.classify import ModelInfo
from pifocus.drive import atomic_write_json, open_drive, read_state
from pifocus.exc import ConfigError, DriveError, FileRefusedError, ModelError, SourceError
from pifocus.sources.files import read_sweep_csv

from test_faults_af import time_limit


@pytest.fixture
def fifo(tmp_path):
    p = tmp_path / "pipe"
    os.mkfifo(p)
    return p


def test_state_write_never_replaces_a_fifo_or_device(fifo):
    with time_limit(10):
        with pytest.raises(FileRefusedError, match="FIFO"):
            atomic_write_json(str(fifo), {"position": 1})
    assert os.path.exists(fifo) and not os.path.isfile(fifo)


def test_state_file_dev_null_is_refused_not_replaced():
    import stat
    with pytest.raises(FileRefusedError, match="character device"):
        atomic_write_json("/dev/null", {"position": 1})
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_drive_with_a_fifo_state_file_says_so(fifo):
    with time_limit(10):
        d = open_drive("sim", width=160, height=120, state_file=str(fifo))
        with pytest.raises(DriveError, match="not a regular file"):
            with d:
                d.move_to(300)
    assert not os.path.isfile(fifo)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/full", "fifo"])
def test_state_read_of_a_special_file_is_bounded(path, fifo, caplog):
    path = str(fifo) if path == "fifo" else path
    with time_limit(10):
        assert read_state(path) is None
    assert "not a regular file" in caplog.text


def test_huge_state_file_is_refused(tmp_path, caplog):
    p = tmp_path / "state.json"
    p.write_text(json.dumps({"position": 1, "pad": "x" * 200_000}))
    assert read_state(str(p)) is None
    assert "larger than" in caplog.text


@pytest.mark.parametrize("path", ["/dev/zero", "fifo", "dir"])
def test_config_special_file_is_a_one_line_config_error(path, fifo, tmp_path):
    path = {"fifo": str(fifo), "dir": str(tmp_path)}.get(path, path)
    with time_limit(10):
        with pytest.raises(ConfigError, match="not a regular file"):
            cfgmod.load(path)


def test_config_file_too_large(tmp_path):
    p = tmp_path / "big.toml"
    p.write_text("# " + "x" * (2 * 1024 * 1024) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        cfgmod.load(p)


def test_sweep_csv_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "sweep.csv")
    with time_limit(10):
        with pytest.raises(SourceError, match="FIFO"):
            read_sweep_csv(str(tmp_path / "sweep.csv"))


def test_model_metadata_device_is_refused():
    with time_limit(10):
        with pytest.raises(ModelError, match="character device"):
            ModelInfo.load("/dev/zero")
