"""Issue 14: a GPIO used by both ``[outputs]`` and ``[drive]`` is refused at config time."""

import pytest

from pifocus import cli
from pifocus import config as cfgmod
from pifocus.exc import ConfigError


@pytest.mark.parametrize("outputs, drive, keys", [
    ("led_pin = 20", 'name = "stepper"', ("outputs.led_pin", "drive.step_pin")),
    ("buzzer_pin = 16", 'name = "stepper"\nenable_pin = "BCM16"', ("outputs.buzzer_pin", "drive.enable_pin")),
    ("meter_pin = 13", 'name = "uln2003"', ("outputs.meter_pin", "drive.coil_pins[1]")),
    ("rgb_pins = [22, 23, 5]", 'name = "stepper"\nhoming = "switch"\nlimit_pin = "GPIO5"',
     ("outputs.rgb_pins", "drive.limit_pin")),
    ("led_pin = 20", 'name = "stepper"\nstep_pin = "BOARD38"', ("outputs.led_pin", "drive.step_pin")),
])
def test_shared_pin_is_refused_naming_both_keys(tmp_path, outputs, drive, keys):
    p = tmp_path / "c.toml"
    p.write_text(f"[outputs]\n{outputs}\n\n[drive]\n{drive}\n")
    with pytest.raises(ConfigError) as e:
        cfgmod.load(p)
    for k in keys:
        assert k in str(e.value)


def test_no_conflict_for_drives_without_pins(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[outputs]\nled_pin = 20\n\n[drive]\nname = "sim"\n')
    assert cfgmod.load(p).drive.name == "sim"


def test_cli_drive_override_is_checked_too(capsys, tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[outputs]\nled_pin = 21\n')
    rc = cli.main(["autofocus", "--config", str(p), "--drive", "stepper", "--no-cnn"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "outputs.led_pin" in err[0] and "drive.dir_pin" in err[0]
