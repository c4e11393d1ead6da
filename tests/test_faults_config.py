"""Issue 14, gaps the fault matrix found: config values that were accepted or ended in an
unhelpful message -- each now refused at load, naming the key, the value and what is allowed."""

import logging
import math

import pytest

from pifocus import cli
from pifocus import config as cfgmod
from pifocus.drive import DriveParams, open_drive
from pifocus.exc import ConfigError
from pifocus.sources import open_source


def _load(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return cfgmod.load(p)


@pytest.mark.parametrize("key, value", [("speed", math.inf), ("speed", 1e12), ("acceleration", math.inf),
                                        ("acceleration", 1e12), ("backlash", math.inf), ("backlash", 1e12),
                                        ("backlash_margin", 1e12), ("home_travel", math.inf),
                                        ("home_speed", 1e12)])
def test_drive_numbers_are_bounded(key, value):
    with pytest.raises(ConfigError, match=f"drive.{key} = "):
        DriveParams(**{key: value})


@pytest.mark.parametrize("kw, key", [({"step_pin": "GPIO99"}, "step_pin"), ({"dir_pin": "led"}, "dir_pin"),
                                     ({"enable_pin": "BOARD41"}, "enable_pin"),
                                     ({"coil_pins": ("GPIO5", "GPIO5", "GPIO6", "GPIO7"), "name": "uln2003"},
                                      "coil_pins[1]"),
                                     ({"step_pin": "GPIO16", "name": "stepper"}, "enable_pin"),
                                     ({"ms_pins": ("GPIO1", "nope")}, "ms_pins[1]")])
def test_drive_pin_names_and_duplicates(kw, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[")):
        DriveParams(**kw)


def test_good_pin_names_pass():
    DriveParams(name="stepper", step_pin="BCM20", dir_pin="21", enable_pin="", limit_pin="BOARD29")
    DriveParams(name="sim", coil_pins=("GPIO5", "GPIO5", "GPIO6", "GPIO7"))   # not claimed by a sim drive


@pytest.mark.parametrize("value", ['"12 px"', "[1]", "{a = 1}", "true", "nan"])
def test_sim_source_types_name_the_key(value, tmp_path):
    cfg = _load(tmp_path, f'[source]\nname = "sim"\nfps = {value}\n')
    with pytest.raises(ConfigError, match=r"sim source: fps = .* is invalid; allowed"):
        open_source(cfg.source.name, **cfg.source.options)


def test_source_that_is_not_a_table(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text("source = 3\n")
    assert cli.main(["run", "--config", str(p), "--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert "[source] must be a table" in err and "unexpected" not in err


def test_reversed_limits_name_the_option(capsys):
    assert cli.main(["autofocus", "--limits", "900:100", "--no-cnn"]) == 2
    err = capsys.readouterr().err
    assert "--limits '900:100': LO must be below HI" in err


def test_unwritable_state_at_close_logs_one_line_without_traceback(tmp_path, caplog):
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    d = open_drive("sim", width=160, height=120, state_file=str(tmp_path / "ok.json"))
    d.open()
    d.state_path = str(fifo)          # the file becomes unwritable after open
    with caplog.at_level(logging.ERROR):
        d.close()
    recs = [r for r in caplog.records if "could not save the position" in r.getMessage()]
    assert recs and all(r.exc_info is None for r in recs)
    assert "FIFO" in recs[0].getMessage()
