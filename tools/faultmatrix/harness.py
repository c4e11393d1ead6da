"""Harness of the fault matrix: cases, outcomes, forked runs, judging a ``pifocus`` exit.

A case runs in a child forked from the matrix process (which has imported pifocus, NumPy and
OpenCV once), so a case costs milliseconds to start, cannot disturb the next one, and is
watched from outside: a wall-clock bound (``hang`` when exceeded; the child is killed), an
address-space limit (``RLIMIT_AS``), and its peak resident memory from ``wait4``'s
``ru_maxrss``.  A child killed by a signal is a ``crash``.
"""

import io
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

#: Outcomes.  ``held``: refused or answered as documented.  The rest are failures.
OUTCOMES = ("held", "traceback", "unexpected", "hang", "crash", "memory", "wrong", "data-loss", "security")
#: Peak resident memory any case may reach (MB); above it the case is a ``memory`` failure.
MEM_BOUND_MB = 1024
#: Address-space limit of a forked case (MB): a runaway allocation fails there instead of
#: taking the machine down.
ADDRESS_LIMIT_MB = 4096


@dataclass
class Case:
    """One case of the matrix.

    Attributes:
        id: unique, ``category/name``.
        category: the issue's category (config, reload, model, kill, disk, bomb, special, web,
            limits, sweepcsv, randomaf, cli).
        fn: ``fn() -> (outcome, detail)``.
        quick: part of ``--quick``.
        slow: run only with ``--slow`` (kills, full disk, bombs, the web daemon).
    """
    id: str
    category: str
    fn: Callable[[], Tuple[str, str]]
    quick: bool = False
    slow: bool = False


@dataclass
class ChildResult:
    """What a forked case left behind."""
    rc: Optional[int]           # exit status (None: killed by a signal or by the bound)
    signal: Optional[int]       # the signal that ended it
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float
    maxrss_mb: float
    extra: dict = field(default_factory=dict)


#: Ids of the cases chosen for this run (set by the command; batch cases run only those).
SELECTED: set = set()

#: Largest peak RSS seen over all forked cases (MB), and the case that reached it.
PEAK = {"mb": 0.0, "case": None}


def run_forked(target: Callable[[], int], timeout_s: float = 30.0, address_mb: int = ADDRESS_LIMIT_MB,
               cwd: Optional[str] = None, label: str = "") -> ChildResult:
    """Run ``target()`` in a forked child; its return value is the exit status.

    The child gets its own process group (killed as a whole on timeout), stdout/stderr in
    temporary files, ``RLIMIT_AS = address_mb`` and ``cwd``.  An exception escaping
    ``target`` is printed as a traceback on the child's stderr (status 70).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        rc = 70
        try:
            os.setpgid(0, 0)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0, closefd=False), write_through=True)
            sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0, closefd=False), write_through=True)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if address_mb:
                lim = address_mb * 1024 * 1024
                resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
            if cwd:
                os.chdir(cwd)
            rc = int(target() or 0)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            rc = 70
        finally:
            for stream in (sys.stderr, sys.stdout):  # unbuffered; a full stdout must not lose stderr
                try:
                    stream.flush()
                except BaseException:
                    pass
            os._exit(rc & 0xFF)
    deadline = t0 + timeout_s
    timed_out = False
    status = rusage = None
    while True:
        wpid, status, rusage = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            break
        if time.monotonic() > deadline:
            timed_out = True
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status, rusage = os.wait4(pid, 0)
            break
        time.sleep(0.01)
    seconds = time.monotonic() - t0
    out.seek(0)
    err.seek(0)
    res = ChildResult(rc=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                      signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                      timed_out=timed_out, stdout=out.read().decode("utf-8", "replace"),
                      stderr=err.read().decode("utf-8", "replace"), seconds=seconds,
                      maxrss_mb=rusage.ru_maxrss / 1024.0)
    out.close()
    err.close()
    if res.maxrss_mb > PEAK["mb"]:
        PEAK.update(mb=res.maxrss_mb, case=label)
    return res


def error_lines(stderr: str) -> List[str]:
    """The ``pifocus: error:`` lines of a run."""
    return [ln for ln in stderr.splitlines() if ln.startswith("pifocus: error:")]


def failure_of(res: ChildResult) -> Optional[Tuple[str, str]]:
    """The generic failure of a run (hang, crash, memory, traceback, unexpected), or None."""
    if res.timed_out:
        return "hang", f"no exit within {res.seconds:.0f} s (killed)"
    if res.signal is not None:
        return "crash", f"killed by signal {signal.Signals(res.signal).name}"
    if res.maxrss_mb > MEM_BOUND_MB:
        return "memory", f"peak RSS {res.maxrss_mb:.0f} MB > {MEM_BOUND_MB} MB"
    if "Traceback (most recent call last)" in res.stderr:
        last = [ln for ln in res.stderr.strip().splitlines() if ln.strip()][-1:]
        return "traceback", f"traceback: {last[0][:160] if last else ''}"
    errs = error_lines(res.stderr)
    if any("unexpected" in e for e in errs) or res.rc == 1:
        return "unexpected", (errs[-1][:200] if errs else f"status {res.rc}")
    return None


def judge_cli(res: ChildResult, refuse: bool, needles: Sequence[str] = (), ok_codes=(0,),
              accept_ok: bool = False, fail_kind: str = "wrong") -> Tuple[str, str]:
    """Judge a ``pifocus`` run.

    Args:
        res: the run.
        refuse: the input must be refused: status 2 and exactly one ``pifocus: error:`` line
            containing every string of ``needles`` (case-insensitive).
        ok_codes: statuses that count as a good run when ``refuse`` is False.
        accept_ok: with ``refuse``, a good run (status in ``ok_codes``) also holds (the
            value is legal after all).
        fail_kind: the outcome when the input was not handled as expected (``wrong``,
            ``security``, ``data-loss``).
    """
    bad = failure_of(res)
    if bad:
        return bad
    errs = error_lines(res.stderr)
    if refuse:
        if res.rc == 2 and len(errs) == 1:
            missing = [n for n in needles if n.lower() not in errs[0].lower()]
            if missing:
                return fail_kind, f"error does not name {missing}: {errs[0][:200]}"
            return "held", errs[0][len("pifocus: error: "):][:160]
        if accept_ok and res.rc in ok_codes:
            return "held", f"accepted (status {res.rc})"
        if res.rc == 2:
            return fail_kind, f"{len(errs)} error lines: {' | '.join(errs)[:200]}"
        return fail_kind, f"accepted: status {res.rc}, expected a refusal naming {list(needles)}"
    if res.rc in ok_codes:
        return "held", f"status {res.rc}"
    return fail_kind, f"status {res.rc}: {(errs[-1] if errs else res.stderr.strip()[-200:])[:200]}"


def cli_target(argv: List[str], env: Optional[dict] = None) -> Callable[[], int]:
    """A forkable target that runs ``pifocus argv`` in-process (stdin from /dev/null)."""
    def target() -> int:
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
        for k, v in (env or {}).items():
            os.environ[k] = v
        from pifocus.cli import main
        return main(list(argv))
    return target


def cli_case(argv: List[str], refuse: bool, needles: Sequence[str] = (), timeout_s: float = 30.0,
             ok_codes=(0,), accept_ok: bool = False, cwd: Optional[str] = None, label: str = "",
             post: Optional[Callable[[ChildResult], Optional[Tuple[str, str]]]] = None,
             fail_kind: str = "wrong") -> Tuple[str, str]:
    """Run ``pifocus argv`` forked and judge it (:func:`judge_cli`); ``post(res)`` may turn a
    held case into a failure (e.g. a device node replaced: ``data-loss``)."""
    res = run_forked(cli_target(argv), timeout_s=timeout_s, cwd=cwd, label=label)
    outcome, detail = judge_cli(res, refuse, needles, ok_codes, accept_ok, fail_kind)
    if post is not None:
        extra = post(res)
        if extra is not None and outcome == "held":
            return extra
    return outcome, detail
