"""Issue 14: the fault matrix (``tools/fault_matrix.py``) -- its harness tells every outcome
apart, and ``--quick`` (a subset of every category) holds on this tree."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from faultmatrix import harness  # noqa: E402
from faultmatrix.harness import ChildResult, judge_cli, run_forked  # noqa: E402


def _res(rc=2, stderr="", sig=None, timed_out=False, rss=50.0):
    return ChildResult(rc=rc, signal=sig, timed_out=timed_out, stdout="", stderr=stderr, seconds=0.1,
                       maxrss_mb=rss)


@pytest.mark.parametrize("res, refuse, expected", [
    (_res(2, "WARNING x: y\npifocus: error: source.fps = nan is invalid\n"), True, "held"),
    (_res(2, "pifocus: error: something else\n"), True, "wrong"),                 # does not name the key
    (_res(0, ""), True, "wrong"),                                                 # accepted
    (_res(2, "pifocus: error: a\npifocus: error: b\n"), True, "wrong"),           # two error lines
    (_res(1, "pifocus: error: unexpected TypeError: x\n"), True, "unexpected"),
    (_res(2, "Traceback (most recent call last):\n  File x\nValueError: y\n"), True, "traceback"),
    (_res(None, "", sig=signal.SIGSEGV), True, "crash"),
    (_res(None, "", timed_out=True), True, "hang"),
    (_res(0, "", rss=harness.MEM_BOUND_MB + 1), False, "memory"),
    (_res(0, ""), False, "held"),
    (_res(3, ""), False, "wrong"),
])
def test_judge_tells_the_outcomes_apart(res, refuse, expected):
    assert judge_cli(res, refuse, ["source.fps"])[0] == expected


def test_run_forked_sees_hangs_crashes_exit_codes_and_memory():
    t0 = time.monotonic()
    hung = run_forked(lambda: time.sleep(30), timeout_s=1.0)
    assert hung.timed_out and time.monotonic() - t0 < 10
    crashed = run_forked(lambda: os.kill(os.getpid(), signal.SIGSEGV), timeout_s=10)
    assert crashed.signal == signal.SIGSEGV
    assert run_forked(lambda: 7, timeout_s=10).rc == 7
    big = run_forked(lambda: len(bytearray(300 * 1024 * 1024)) and 0, timeout_s=20)
    assert big.rc == 0 and big.maxrss_mb > 250
    capped = run_forked(lambda: len(bytearray(300 * 1024 * 1024)) and 0, timeout_s=20, address_mb=200)
    assert capped.rc == 70 and "MemoryError" in capped.stderr


def test_quick_matrix_holds(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "fault_matrix.py"), "--quick", "--json",
                        "--work", str(tmp_path)], capture_output=True, text=True, timeout=170, env=env)
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    failing = [f"{r['case']}: {r['outcome']} {r['detail']}" for r in summary["results"] if r["outcome"] != "held"]
    assert not failing, "\n".join(failing)
    assert p.returncode == 0
    assert set(summary["categories"]) >= {"config", "cli", "reload", "model", "special", "bomb", "limits",
                                          "sweepcsv", "randomaf", "kill", "disk", "web"}
    assert summary["cases"] >= 120 and summary["peak_rss_mb"] < harness.MEM_BOUND_MB


def test_the_whole_matrix_has_at_least_the_issues_667_cases(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "fault_matrix.py"), "--slow", "--list",
                        "--work", str(tmp_path)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    ids = p.stdout.split("\n")
    ids = [i for i in ids if i]
    assert p.returncode == 0 and len(ids) == len(set(ids)) >= 667
    per = {}
    for i in ids:
        per[i.split("/")[0]] = per.get(i.split("/")[0], 0) + 1
    assert per["kill"] >= 50 and per["randomaf"] >= 106 and per["model"] >= 47 and per["web"] >= 20
