"""Without matplotlib (a Pi that kept numpy 1.24 by not pip-installing it), ``--plot`` fails at
once with the apt package to install, before minutes of work."""

import sys

import pytest

from pifocus import cli
from pifocus.classify import evaluate as ev
from pifocus.exc import ConfigError
from pifocus.validate import MATPLOTLIB_FIX, require_matplotlib


@pytest.fixture
def no_matplotlib(monkeypatch):
    # A None entry in sys.modules makes ``import matplotlib`` raise ImportError, as on a
    # system where it is not installed.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_require_matplotlib_names_the_option_and_the_apt_package(no_matplotlib):
    with pytest.raises(ConfigError) as e:
        require_matplotlib("--plot")
    msg = str(e.value)
    assert msg.startswith("--plot needs matplotlib")
    assert "sudo apt install python3-matplotlib" in msg and "pip install 'pifocus[plot]'" in msg
    assert isinstance(e.value.__cause__, ImportError)


def test_require_matplotlib_passes_when_it_is_there():
    pytest.importorskip("matplotlib")
    require_matplotlib("--plot")


def test_evaluate_checks_before_reading_tiles_or_model(no_matplotlib, tmp_path, monkeypatch):
    def must_not_run(*a, **k):
        raise AssertionError("the tile set was read before the matplotlib check")
    monkeypatch.setattr(ev, "load_tileset", must_not_run)
    with pytest.raises(ConfigError, match="python3-matplotlib"):
        ev.evaluate(tiles_path=str(tmp_path / "tiles.npz"), plot=str(tmp_path / "roc.png"))


def test_evaluate_command_fails_fast(no_matplotlib, tmp_path, capsys):
    rc = cli.main(["evaluate", "--tiles", str(tmp_path / "missing.npz"), "--plot", str(tmp_path / "r.png")])
    err = capsys.readouterr().err
    assert rc != 0 and "--plot needs matplotlib" in err and "python3-matplotlib" in err
    assert not (tmp_path / "r.png").exists()


def test_autofocus_command_checks_before_the_lens_moves(no_matplotlib, tmp_path, capsys, monkeypatch):
    from pifocus.commands import autofocus as cmd
    monkeypatch.setattr(cmd, "open_configured_drive",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("the drive was opened")))
    rc = cli.main(["autofocus", "--drive", "sim", "--plot", str(tmp_path / "af.png")])
    err = capsys.readouterr().err
    assert rc != 0 and "--plot needs matplotlib" in err and MATPLOTLIB_FIX in err
