"""Issue 14: every numeric command-line value is bounded (range in --help), and a bad one
is the one-line ``pifocus: error:`` message with status 2."""

import argparse

import pytest

from pifocus.argtypes import bounded_float, bounded_int
from pifocus.cli import build_parser, main


@pytest.mark.parametrize("argv, needle", [
    (["calibrate", "--points", "1000000000"], "--points: 1000000000 is out of range; allowed: 3..1000"),
    (["bench", "--frames", "-1"], "--frames: -1 is out of range"),
    (["bench", "--warmup", "1e9"], "--warmup: '1e9' is not an integer"),
    (["run", "--frames", "0"], "--frames: 0 is out of range"),
    (["autofocus", "--start", "nan"], "--start: 'nan' is not a finite number"),
    (["autofocus", "--backlash", "inf"], "--backlash: 'inf' is not a finite number"),
    (["autofocus", "--frames", "-1"], "--frames: -1 is out of range"),
    (["calibrate", "--span", "-5"], "--span: -5 is out of range"),
    (["record", "--out", "/nonexistent/out", "--frames", "99999999999"], "--frames: 99999999999 is out of range"),
    (["serve", "--port", "70000"], "--port: 70000 is out of range; allowed: 0..65535"),
    (["run", "--threads", "1000"], "--threads: 1000 is out of range; allowed: 1..64"),
    (["run", "--size", "100000x2"], "--size '100000x2': width and height must be 16..16384"),
    (["run", "--grid", "0x8"], "--grid '0x8': rows and columns must be 1..64"),
    (["run", "--roi", "nan,0,1,1"], "--roi 'nan,0,1,1'"),
    (["run", "-o", "gain=inf"], "-o 'gain=inf'"),
])
def test_bad_numbers_are_one_line_errors(capsys, argv, needle):
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert rc == 2
    assert len(lines) == 1 and lines[0].startswith("pifocus: error: "), err
    assert needle in lines[0]


def test_limits_inf_is_refused(capsys):
    rc = main(["autofocus", "--limits", "0:inf", "--no-cnn"])
    err = capsys.readouterr().err
    assert rc == 2 and "--limits '0:inf'" in err


def test_every_numeric_option_is_bounded_and_shows_its_range():
    _, modules = build_parser()
    parser, _ = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    unbounded = []
    for name, p in sub.choices.items():
        for a in p._actions:
            if a.type in (int, float):
                unbounded.append(f"{name} {a.option_strings}")
            if hasattr(a.type, "range") and a.type.range not in (a.help or ""):
                unbounded.append(f"{name} {a.option_strings}: range not in --help")
    assert not unbounded, unbounded


def test_bounded_helpers():
    assert bounded_int(1, 5)("3") == 3
    assert bounded_float(0, 1)("0.5") == 0.5
    for bad in ("6", "0", "2.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            bounded_int(1, 5)(bad)
    for bad in ("nan", "inf", "-inf", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            bounded_float(0, 1)(bad)
