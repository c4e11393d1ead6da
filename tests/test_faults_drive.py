"""Issue 14: the state file never lies about the lens -- an interrupted move stays
"uncertain" on disk until a move is known complete (or the drive homes)."""

import json

import pytest

from test_drive import KINDS, make, sweep_dir  # noqa: F401  (fixtures)


def _interrupt_during_move(d, exc):
    lo, hi = d.limits
    d.open()
    d.move_to(d.clamp(lo + 0.2 * (hi - lo)))
    start = d.position

    def boom(*_):
        raise exc
    d.on_moving = boom
    with pytest.raises(type(exc)):
        d.move_to(d.clamp(lo + 0.8 * (hi - lo)))
    d.on_moving = None
    return start


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("driver fault")],
                         ids=["ctrl-c", "exception"])
@pytest.mark.parametrize("kind", KINDS)
def test_close_after_an_interrupted_move_keeps_it_uncertain(make, kind, exc):  # noqa: F811
    d = make(kind)
    _interrupt_during_move(d, exc)
    assert d.position_uncertain
    d.close()                                   # the normal cleanup path (finally / with)
    st = json.loads(open(d.state_path).read())
    assert st["moving"] is True                 # the write-ahead record is still there
    d2 = make(kind)
    with d2:
        assert d2.position_uncertain


@pytest.mark.parametrize("kind", ["sim", "stepper", "uln2003"])
def test_moves_after_an_interrupted_one_are_refused_and_it_stays_uncertain(make, kind):  # noqa: F811
    from pifocus.exc import DriveError
    d = make(kind)
    _interrupt_during_move(d, KeyboardInterrupt())
    lo, hi = d.limits
    with pytest.raises(DriveError, match="uncertain.*interrupted.*pifocus position --set POS"):
        d.move_to(d.clamp(lo + 0.5 * (hi - lo)))    # relative to an unknown start: refused
    d.close()
    st = json.loads(open(d.state_path).read())
    assert st["moving"] is True or st.get("uncertain") is True
    with make(kind) as d2:
        assert d2.position_uncertain
        with pytest.raises(DriveError, match="the last run stopped during a move"):
            d2.move_by(1)


@pytest.mark.parametrize("kind", ["replay", "libcamera"])
def test_absolute_drives_are_certain_after_the_next_move(make, kind):  # noqa: F811
    d = make(kind)
    _interrupt_during_move(d, KeyboardInterrupt())
    assert d.position_uncertain
    lo, hi = d.limits
    d.move_to(d.clamp(lo + 0.5 * (hi - lo)))     # sets the lens position absolutely
    assert not d.position_uncertain
    d.close()


def test_homing_clears_the_uncertain_mark(make):  # noqa: F811
    d = make("sim", homing="switch")
    _interrupt_during_move(d, KeyboardInterrupt())
    d.home()
    assert not d.position_uncertain
    d.close()
    st = json.loads(open(d.state_path).read())
    assert st["moving"] is False and not st.get("uncertain")


def test_an_abandoned_drive_is_not_reopened_by_a_late_move(make):  # noqa: F811
    from pifocus.exc import DriveError
    d = make("sim")
    d.open()
    d.abandon_move()
    d.close()
    with pytest.raises(DriveError, match="closed while a move was running"):
        d.move_to(500)
    assert d.closed


def test_temp_files_of_a_killed_writer_are_removed_on_the_next_write(tmp_path):
    import os
    import subprocess
    import sys
    from pifocus.drive import atomic_write_json

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".tmp-{dead}-abcd.json"       # what kill -9 after mkstemp leaves
    stale.write_text('{"position": 1')
    live = tmp_path / f".tmp-{os.getppid()}-efgh.json"  # a live writer's: untouched
    live.write_text("{}")
    atomic_write_json(str(tmp_path / "s.json"), {"position": 2.0})
    assert not stale.exists() and live.exists()
    assert json.loads((tmp_path / "s.json").read_text()) == {"position": 2.0}
