"""Issue 14: a step-counting drive whose position is uncertain (a move was interrupted, this
run or the last) is not trusted: every move -- autofocus, presets, nudges -- is refused with
the fix (home, ``pifocus position --set POS``, ``--assume-position POS``), or it homes first
when homing is configured.  The verdict and the outputs keep working."""

import json

import pytest

from pifocus import cli
from pifocus.drive import open_drive
from pifocus.exc import DriveError, ServiceError

FIX = r"pifocus position --set POS"


def _moving_record(path, pos=300.0, target=900.0, kind="stepper"):
    path.write_text(json.dumps({"position": pos, "moving": True, "target": target, "homed": False,
                                "drive": kind, "last_dir": 1}))
    return path


def _stepper(mock_factory, state, **kw):
    return open_drive("stepper", pin_factory=mock_factory, state_file=str(state), acceleration=0.0,
                      speed=1e5, **kw)


def test_uncertain_restore_refuses_every_move_naming_the_fix(mock_factory, tmp_path):
    state = _moving_record(tmp_path / "s.json")
    with _stepper(mock_factory, state) as d:
        assert d.position_uncertain and d.position == 300.0       # readable, not trusted
        assert "stopped during a move from 300 to 900" in d.uncertain_reason
        for move in (lambda: d.move_to(500), lambda: d.move_by(10), lambda: d.move_to(300)):
            with pytest.raises(DriveError, match=f"uncertain.*refused.*home it.*{FIX}.*--assume-position"):
                move()
        assert d.moves == 0
    saved = json.loads(state.read_text())
    assert saved.get("uncertain") is True or saved["moving"] is True   # still not "settled"


def test_set_position_clears_it_and_moves_work_again(mock_factory, tmp_path):
    state = _moving_record(tmp_path / "s.json")
    with _stepper(mock_factory, state) as d:
        d.set_position(250)
        assert not d.position_uncertain and d.uncertain_reason == ""
        assert d.move_to(400) == 400.0
    saved = json.loads(state.read_text())
    assert saved["position"] == 400.0 and saved["moving"] is False and not saved.get("uncertain")


@pytest.mark.parametrize("bad", [-1, 2001, float("nan"), "x"])
def test_set_position_is_checked(mock_factory, tmp_path, bad):
    d = _stepper(mock_factory, tmp_path / "s.json")
    with pytest.raises(DriveError, match=r"outside the drive's range 0..2000"):
        d.set_position(bad)


def test_homing_configured_homes_first_and_assume_is_not_used(mock_factory, tmp_path, caplog):
    state = _moving_record(tmp_path / "s.json")
    d = _stepper(mock_factory, state, homing="endstop", home_travel=50, min_position=100)
    d.told_position = 777
    with d:
        assert d.homed_on_open and not d.position_uncertain
        assert d.position == 100                       # homed to 0, then to the soft limit
        d.move_to(400)
    assert "--assume-position 777 is not used" in caplog.text


def test_an_interrupted_move_in_this_run_is_refused_too(mock_factory, tmp_path):
    d = _stepper(mock_factory, tmp_path / "s.json", assume_position=0)
    with d:
        def boom(*_):
            raise RuntimeError("driver fault")
        d.on_moving = boom
        with pytest.raises(RuntimeError):
            d.move_to(500)
        d.on_moving = None
        with pytest.raises(DriveError, match=r"a move 0 -> 500 was interrupted \(RuntimeError\)"):
            d.move_to(100)


def _cfg(tmp_path, state, extra=""):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[source]\nname = "sim"\nwidth = 160\nheight = 120\n\n[analysis]\nuse_cnn = false\n\n'
                   f'[drive]\nname = "stepper"\nspeed = 100000.0\nacceleration = 0.0\n'
                   f'state_file = "{state}"\n{extra}')
    return cfg


def test_cli_autofocus_on_an_uncertain_stepper_is_one_line(mock_factory, tmp_path, capsys):
    state = _moving_record(tmp_path / "s.json")
    rc = cli.main(["autofocus", "--config", str(_cfg(tmp_path, state))])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("pifocus:")]
    assert rc == 2 and len(err) == 1 and "uncertain" in err[0] and "pifocus position --set POS" in err[0]


def test_cli_assume_position_over_an_uncertain_one(mock_factory, tmp_path, capsys):
    state = _moving_record(tmp_path / "s.json")
    rc = cli.main(["autofocus", "--config", str(_cfg(tmp_path, state)), "--assume-position", "1000",
                   "--strategy", "sweep", "--json"])
    out = capsys.readouterr().out
    assert rc in (0, 3), out            # ran (the sim frames do not follow a stepper: gate may fail)
    saved = json.loads(state.read_text())
    assert saved["moving"] is False and not saved.get("uncertain")
    assert json.loads(out.splitlines()[-1])["frames_used"] > 0


def test_position_command_show_set_home(mock_factory, tmp_path, capsys):
    state = _moving_record(tmp_path / "s.json")
    cfg = _cfg(tmp_path, state)
    assert cli.main(["position", "--config", str(cfg), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["position"] == 300.0 and shown["uncertain"] is True and "during a move" in shown["reason"]
    assert json.loads(state.read_text())["moving"] is True        # showing changes nothing
    assert cli.main(["position", "--config", str(cfg), "--set", "120", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["position"] == 120.0 and not out["uncertain"] and out["previous_uncertain"] is True
    assert cli.main(["position", "--config", str(cfg), "--home"]) == 2
    assert "homing is not configured" in capsys.readouterr().err
    cfg2 = _cfg(tmp_path, state, 'homing = "endstop"\nhome_travel = 40\n')
    _moving_record(state)
    assert cli.main(["position", "--config", str(cfg2), "--home", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["position"] == 0.0 and out["homed"] is True and not out["uncertain"]


def test_service_keeps_judging_focus_but_refuses_to_nudge(tmp_path, monkeypatch):
    from pifocus.service import SdNotifier, Service
    from test_service import _cfg as service_cfg

    monkeypatch.chdir(tmp_path)
    state = _moving_record(tmp_path / "drive-state.json", pos=500.0, target=800.0, kind="sim")
    cfg = service_cfg(tmp_path, extra=f'\n[drive]\nname = "sim"\nstate_file = "{state}"\n')
    svc = Service(cfg, notifier=SdNotifier(""), web_enabled=False)
    svc.start()
    try:
        assert svc.wait_ready(20)
        with pytest.raises(ServiceError, match="uncertain.*pifocus position --set POS") as e:
            svc.controls.nudge(25)
        assert e.value.status == 400
        doc = svc.controls.status()
        assert doc["drive"]["uncertain"] is True and "during a move" in doc["drive"]["uncertain_reason"]
        assert doc["drive"]["position"] == 500.0 and doc["verdict"] is not None and doc["frames"] > 0
    finally:
        svc.shutdown()
