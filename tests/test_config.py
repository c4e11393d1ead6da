"""TOML config -> validated dataclasses, and clear errors for every kind of mistake."""

from pathlib import Path

import pytest

from pifocus import config
from pifocus.exc import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    p = tmp_path / "pifocus.toml"
    p.write_text(text)
    return p


def test_documented_example_config_loads():
    cfg = config.load(ROOT / "systemd" / "pifocus.toml")
    assert cfg.source.name
    assert cfg.analysis.rows >= 1


def test_values_and_nested_keys(tmp_path):
    cfg = config.load(write(tmp_path, """
[source]
name = "sim"
width = 640
[analysis]
rows = 4
roi = [0.1, 0.2, 0.5, 0.5]
dwell_frames = 5
scene_change = 0.5
peak_decay_per_frame = 0.01
"""))
    assert cfg.source.options == {"width": 640}
    a = cfg.analysis
    assert a.rows == 4 and a.roi == (0.1, 0.2, 0.5, 0.5)
    assert a.verdict.dwell_frames == 5 and a.peak.scene_change == 0.5 and a.peak.decay_per_frame == 0.01


@pytest.mark.parametrize("text, match", [
    ("[analysis]\nrowz = 4\n", r"analysis\.rowz; did you mean 'rows'"),
    ("[analysis]\nrows = 'six'\n", r"analysis\.rows = 'six' has the wrong type; allowed: an integer"),
    ("[analysis]\nrows = 0\n", r"analysis\.rows = 0 is invalid; allowed: 1\.\.64"),
    ("[analysis]\nroi = [0.9, 0.9, 0.5, 0.5]\n", r"analysis\.roi"),
    ("[analysis]\nuse_cnn = 1\n", r"true or false"),
    ("[analysys]\n", r"unknown table \[analysys\]; did you mean \[analysis\]"),
    ("[analysis\n", r"not valid TOML"),
])
def test_bad_config_names_key_value_and_allowed(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        config.load(write(tmp_path, text))


def test_missing_file_says_how_to_start(tmp_path):
    with pytest.raises(ConfigError, match="not found; copy systemd/pifocus.toml"):
        config.load(tmp_path / "nope.toml")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_verdict_approach_and_decisive_keys_reach_the_verdict():
    from pifocus.config import from_dict
    a = from_dict({"analysis": {"approach_fraction": 0.95, "decisive_margin": 0.2}}).analysis
    assert a.verdict.approach_fraction == 0.95 and a.verdict.decisive_margin == 0.2
    with pytest.raises(ConfigError, match=r"approach_fraction.*on_fraction"):
        from_dict({"analysis": {"approach_fraction": 0.2}})
