"""Rack-focus presets (pifocus.presets): the store (atomic, validated), moves at a set speed
on the simulated drive, cancelling, the ``pifocus preset`` command."""

import json
import threading

import pytest

from pifocus.cli import main
from pifocus.drive import DriveParams
from pifocus.drive.simulated import SimulatedDrive
from pifocus.exc import ConfigError
from pifocus.presets import MAX_PRESETS, PresetStore, RackParams, leg_count, rack_legs, rack_to
from pifocus.sources.simulated import SimulatedSource


def test_store_save_get_delete_and_file_format(tmp_path):
    st = PresetStore(str(tmp_path / "s" / "presets.json"))
    assert st.load() == {}
    st.save("A", 312.5)
    st.save("far wall", 1480)
    st.save("A", 300)                       # replaces
    assert st.get("A")["position"] == 300.0 and st.get("far wall")["position"] == 1480.0
    data = json.loads((tmp_path / "s" / "presets.json").read_text())
    assert data["version"] == 1 and set(data["presets"]) == {"A", "far wall"}
    assert not list((tmp_path / "s").glob("*.tmp*")) and not list((tmp_path / "s").glob("*.part"))
    st.delete("A")
    with pytest.raises(ConfigError, match="no preset 'A'; saved presets: far wall"):
        st.get("A")


@pytest.mark.parametrize("name", ["", " ", "-x", "a/b", "x" * 25, None, 3])
def test_bad_names_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="preset name"):
        PresetStore(str(tmp_path / "p.json")).save(name, 1.0)


def test_bad_position_and_too_many(tmp_path):
    st = PresetStore(str(tmp_path / "p.json"))
    with pytest.raises(ConfigError, match="preset.position"):
        st.save("A", float("nan"))
    for i in range(MAX_PRESETS):
        st.save(f"p{i}", i)
    with pytest.raises(ConfigError, match="delete one first"):
        st.save("one-more", 1)


def test_corrupt_file_is_named(tmp_path):
    p = tmp_path / "p.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="fix or delete"):
        PresetStore(str(p)).load()
    p.write_text('{"presets": {"A": {"position": "x"}}}')
    with pytest.raises(ConfigError, match="not a pifocus presets file"):
        PresetStore(str(p)).load()


@pytest.mark.parametrize("kw", [dict(speed_units_s=0), dict(tick_s=5)])
def test_rack_params_validated(kw):
    with pytest.raises(ConfigError, match="rack\\."):
        RackParams(**kw)


def _drive(backlash=0.0):
    d = SimulatedDrive(DriveParams(name="sim", state_file="none", backlash=backlash),
                       source=SimulatedSource(width=128, height=96), backlash_steps=backlash)
    d.open()
    return d


def test_rack_moves_at_the_set_speed():
    d = _drive()
    d.move_to(100)
    slept = []
    rp = RackParams(speed_units_s=200, tick_s=0.05)        # 10 units per leg
    legs = list(rack_legs(d, 400, rp, sleep=slept.append))
    assert len(legs) == leg_count(100, 400, rp) == 30
    steps = [b - a for a, b in zip([100.0] + legs[:-1], legs)]
    assert max(abs(s) for s in steps) <= 10 + 1e-9          # never faster than the set speed
    assert legs[-1] == 400 and d.position == 400
    assert len(slept) == 29 and all(0 <= s <= 0.05 for s in slept)
    d.close()


def test_rack_lands_from_the_approach_side_and_cancels():
    d = _drive(backlash=12.0)
    lens = []
    for start in (600, 50):                                 # from above and from below
        d.move_to(start)
        out = rack_to(d, 200, RackParams(speed_units_s=5000), sleep=lambda s: None)
        assert out["position"] == 200 and not out["cancelled"]
        lens.append(d.ring.lens)
    assert lens[0] == pytest.approx(lens[1], abs=0.5)       # backlash drops out: same lens position either way
    stop = threading.Event()
    n = 0
    for _ in rack_legs(d, 900, RackParams(speed_units_s=100, tick_s=0.05), stop, sleep=lambda s: None):
        n += 1
        if n == 5:
            stop.set()
    assert n == 5 and d.position == pytest.approx(225)
    d.close()


def test_preset_command(tmp_path, capsys):
    f = str(tmp_path / "presets.json")
    assert main(["preset", "save", "B", "--position", "420", "--file", f]) == 0
    assert main(["preset", "list", "--file", f, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1])["name"] == "B" and json.loads(out[-1])["position"] == 420
    assert main(["preset", "go", "B", "--file", f, "--drive", "sim", "--source", "sim", "--size", "128x96",
                 "--speed", "50000", "--json"]) == 0
    o = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert o["position"] == 420 and o["name"] == "B"
    assert main(["preset", "go", "Q", "--file", f, "--drive", "sim"]) != 0
    assert "no preset 'Q'" in capsys.readouterr().err
    assert main(["preset", "save", "--file", f]) != 0
    assert "give the preset NAME" in capsys.readouterr().err
    assert main(["preset", "delete", "B", "--file", f]) == 0
