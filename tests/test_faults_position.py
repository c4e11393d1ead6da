"""Issue 14: a step-counting drive with no saved position never pretends to be at
min_position -- it homes, is told (``assume_position``), or refuses to move."""

import json

import pytest

from pifocus import cli
from pifocus.drive import open_drive
from pifocus.exc import DriveError


@pytest.mark.parametrize("kind", ["stepper", "uln2003"])
def test_unknown_start_refuses_to_move(kind, mock_factory, tmp_path):
    d = open_drive(kind, pin_factory=mock_factory, state_file=str(tmp_path / "s.json"),
                   min_position=100, max_position=1500, acceleration=0.0, speed=1e5)
    with d:
        assert not d.position_known and d.position_uncertain
        with pytest.raises(DriveError, match="position is unknown.*--assume-position"):
            d.move_to(500)
        with pytest.raises(DriveError, match="position is unknown"):
            d.position
    assert not (tmp_path / "s.json").exists()       # nothing invented on disk


def test_unknown_start_homes_when_homing_is_configured(mock_factory, tmp_path):
    d = open_drive("stepper", pin_factory=mock_factory, state_file=str(tmp_path / "s.json"),
                   min_position=100, max_position=1500, acceleration=0.0, speed=1e5,
                   homing="endstop", home_travel=50)
    with d:
        assert d.position_known and not d.position_uncertain
        assert d.position == 100                     # homed to 0, then to the soft limit
        d.move_to(400)
    assert json.loads((tmp_path / "s.json").read_text())["position"] == 400


def test_assume_position_is_used_and_checked(mock_factory, tmp_path):
    d = open_drive("stepper", pin_factory=mock_factory, state_file=str(tmp_path / "s.json"),
                   assume_position=700, acceleration=0.0, speed=1e5)
    with d:
        assert d.position == 700 and not d.position_uncertain
    bad = open_drive("stepper", pin_factory=mock_factory, state_file=str(tmp_path / "t.json"),
                     assume_position=99999)
    with pytest.raises(DriveError, match="assume_position = 99999 is outside"):
        bad.open()


def test_sim_still_knows_its_start():
    with open_drive("sim", width=160, height=120) as d:
        assert d.position_known and d.position == d.limits[0]


def test_cli_autofocus_on_an_unknown_stepper_is_a_one_line_error(capsys, mock_factory, tmp_path):
    rc = cli.main(["autofocus", "--drive", "stepper", "--no-cnn", "--size", "160x120",
                   "--state-file", str(tmp_path / "s.json")])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("pifocus:")]
    assert rc == 2 and len(err) == 1
    assert "position is unknown" in err[0] and "--assume-position" in err[0]
