#!/usr/bin/env python3
"""The bad-input, fault and security matrix of issue 14, as one command.

Categories (the cases live in ``tools/faultmatrix/``):

  config    every documented config key given wrong values; malformed, huge, binary files
  cli       every bounded command-line number below/above its range, nan, inf, text
  reload    SIGHUP-style reloads of a running service with bad configs (old one kept)
  model     corrupt .tflite files (truncated, bit-flipped, random...), with the original
            checksum and re-signed; broken metadata
  special   devices, FIFOs, sockets, folders, symlinks as config, state file, model, image,
            folder, sweep.csv, output folder, plot file (device nodes are scratch clones)
  bomb      decompression bombs in PNG/JPEG/BMP/TIFF/WebP/PGM through score, run, bench,
            sim:IMAGE; a video above the configured pixel cap
  limits    autofocus with fractional soft limits, every strategy
  sweepcsv  replayed sweeps with one mistyped position (x100, nan, ...), every strategy
  randomaf  random sim rigs (limits, start, backlash, missed steps): frame budget, soft
            limits, an honest state file
  kill      kill -9 of a moving stepper at random moments: the state file never lies
  disk      record, state file, --plot, --heatmap on a full private tmpfs; stdout on a full device
  web       pifocus serve: rebinding Host, smuggled GET bodies, slow headers and bodies,
            connection floods, stalled viewers, token in logs, path traversal, bad SIGHUP

Every case runs in a forked child with a wall-clock bound, an address-space limit and its
peak memory measured, and ends in one outcome: held (refused or answered as documented),
traceback, unexpected ("unexpected <Exception>"), hang, crash, memory (peak RSS above the
bound), wrong (a silently wrong result or a bad value accepted), data-loss, security.

    python tools/fault_matrix.py                 # every case but the slow ones (~4 min)
    python tools/fault_matrix.py --slow          # everything: + kills, full disk, bombs, web (~5 min)
    python tools/fault_matrix.py --quick         # a subset of every category (~35 s)
    python tools/fault_matrix.py --only sweepcsv --json

Exit status 0 when every case held, 1 otherwise.  Servers listen on 127.0.0.1 only.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter, OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faultmatrix import files, harness, inputs, lens, service, web  # noqa: E402

#: (category, builder) in the order they run.
BUILDERS = OrderedDict([
    ("config", inputs.config_cases), ("cli", inputs.cli_cases), ("reload", service.reload_cases),
    ("model", files.model_cases), ("special", files.special_cases), ("bomb", files.bomb_cases),
    ("limits", lens.limits_cases), ("sweepcsv", lens.sweepcsv_cases), ("randomaf", lens.randomaf_cases),
    ("kill", lens.kill_cases), ("disk", service.disk_cases), ("web", web.web_cases),
])


def _preload() -> None:
    """Import what the cases use once, before forking (a case then starts in milliseconds)."""
    import cv2  # noqa: F401,F811
    import numpy  # noqa: F401
    import pifocus.cli
    pifocus.cli.build_parser()
    import pifocus.autofocus  # noqa: F401
    import pifocus.drive.simulated  # noqa: F401
    import pifocus.service  # noqa: F401
    try:
        import pifocus.classify.litert  # noqa: F401
    except ImportError:
        pass


def select(cases, args):
    """The cases ``args`` asks for."""
    out = []
    for c in cases:
        if args.only and args.only not in c.id and args.only != c.category:
            continue
        if args.quick and not c.quick:
            continue
        if c.slow and not args.slow and not args.quick:
            continue
        out.append(c)
    return out


def summary(results, elapsed_s: float) -> dict:
    """Counts per outcome and per category (with the failing case ids)."""
    per = OrderedDict()
    for r in results:
        cat = per.setdefault(r["category"], {"cases": 0, "held": 0, "failed": 0, "failing": []})
        cat["cases"] += 1
        if r["outcome"] == "held":
            cat["held"] += 1
        else:
            cat["failed"] += 1
            cat["failing"].append(r["case"])
    counts = Counter(r["outcome"] for r in results)
    return {"cases": len(results), **{o: counts.get(o, 0) for o in harness.OUTCOMES},
            "peak_rss_mb": round(harness.PEAK["mb"], 1), "peak_rss_case": harness.PEAK["case"],
            "memory_bound_mb": harness.MEM_BOUND_MB, "seconds": round(elapsed_s, 1), "categories": per}


def print_table(s: dict, out=sys.stdout) -> None:
    """The summary as a table."""
    print(f"\n{'category':10s} {'cases':>6s} {'held':>6s} {'failed':>7s}  failing cases", file=out)
    for cat, c in s["categories"].items():
        failing = ", ".join(c["failing"][:6]) + (f" (+{len(c['failing']) - 6} more)" if len(c["failing"]) > 6 else "")
        print(f"{cat:10s} {c['cases']:6d} {c['held']:6d} {c['failed']:7d}  {failing}", file=out)
    print(f"\n{s['cases']} cases in {s['seconds']:.0f} s: {s['held']} held (clean errors or correct answers), "
          f"{s['traceback']} tracebacks, {s['unexpected']} unexpected, {s['hang']} hangs, {s['crash']} crashes, "
          f"{s['memory']} over the memory bound, {s['wrong']} wrong results, {s['data-loss']} data-loss, "
          f"{s['security']} security failures", file=out)
    print(f"peak RSS of any case: {s['peak_rss_mb']:.0f} MB ({s['peak_rss_case']}); bound "
          f"{s['memory_bound_mb']} MB, address space limited to {harness.ADDRESS_LIMIT_MB} MB", file=out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a subset of every category (the pytest runs this)")
    ap.add_argument("--slow", action="store_true", help="also the slow cases: kills, full disk, bombs, web daemon")
    ap.add_argument("--only", metavar="WORD", help="only cases of this category or whose id contains WORD")
    ap.add_argument("--json", action="store_true", help="print the summary and every result as one JSON line")
    ap.add_argument("--list", action="store_true", help="list the selected case ids and exit")
    ap.add_argument("--verbose", action="store_true", help="one line per case (default: failures only)")
    ap.add_argument("--work", metavar="DIR", help="scratch folder for the fixtures [a temporary one]")
    args = ap.parse_args(argv)

    tmp = None
    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="pifocus-matrix-")
        work = Path(tmp.name)
    os.environ.update(GPIOZERO_PIN_FACTORY="mock", PIFOCUS_STATE_DIR=str(work / "state"))
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "PIFOCUS_CONFIG", "JOURNAL_STREAM"):
        os.environ.pop(k, None)
    _preload()
    t0 = time.monotonic()
    cases = []
    for cat, build in BUILDERS.items():
        cases += build(work)
    chosen = select(cases, args)
    harness.SELECTED.update(c.id for c in chosen)
    if args.list:
        for c in chosen:
            print(c.id)
        return 0
    print(f"{len(chosen)} of {len(cases)} cases ({time.monotonic() - t0:.1f} s to prepare)", file=sys.stderr)
    results = []
    try:
        for i, c in enumerate(chosen, 1):
            t1 = time.monotonic()
            try:
                outcome, detail = c.fn()
            except Exception as e:  # the harness itself must never stop the matrix
                outcome, detail = "traceback", f"harness: {type(e).__name__}: {e}"
            results.append({"case": c.id, "category": c.category, "outcome": outcome, "detail": detail,
                            "seconds": round(time.monotonic() - t1, 2)})
            if args.verbose or outcome != "held":
                print(f"{outcome:10s} {c.id}: {detail}", file=sys.stderr, flush=True)
            elif i % 100 == 0:
                print(f"... {i}/{len(chosen)}", file=sys.stderr, flush=True)
    finally:
        web.teardown()
        if tmp is not None:
            tmp.cleanup()
    s = summary(results, time.monotonic() - t0)
    print_table(s)
    if args.json:
        print(json.dumps({**s, "results": results}))
    return 0 if s["held"] == s["cases"] else 1


if __name__ == "__main__":
    sys.exit(main())
