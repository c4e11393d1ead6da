#!/usr/bin/env python3
"""Autofocus bench: every strategy over many simulated scenes and over real recorded sweeps.

Simulated runs (``--runs`` per strategy) draw a random scene (chart content seed), focus
position, depth of focus (blur per step), sensor gain and exposure, start position and
backlash of the ring (0 or 2..40 steps; known to the drive -- as after ``pifocus
calibrate`` -- in half of the runs, unknown in the other half).  A run succeeds when AF reports success and the *physical* lens ends within the
depth of focus of the true peak (defocus blur radius <= 1 px, i.e. |error| <= 1 / blur_px_per_step).

Safety runs:

* ``missed``  -- the ring loses 1..N steps on a share of the moves; soft limits [20, 980]
  inside the hard range.  Counted: commanded positions outside the soft limits (must be
  0), lost positions (AF said success but the lens is outside the depth of focus: an
  undetected loss; must be 0), and the drift that homing on the sim's limit switch finds
  and corrects afterwards.
* ``kill``    -- the process "dies" between two moves (the drive object is dropped without
  close()), a new drive restores the position from its state file and AF runs again; and
  a kill *during* a move (after the write-ahead record) must make the new drive home.
  Lost position = restored position differs from the motor's real one.

Replay: every sweep in ``../shared/data/focus-sweeps`` (skipped cleanly when absent), AF
from every recorded position, ROI = the judged region (or the sweep's own ``roi``); counted:
the final frame within +-1 of the frame judged sharpest, within the range judged acceptable
(``tests/data/sweep_truth.json``), the frames used (settling and verification included,
exactly as ``frames_used``), and whether the success flag told the truth (success <=> the
final frame is in the accepted range).  ``replay_summary`` pools every sweep per strategy.

Usage::

    python tools/af_bench.py                  # everything, 200 sim runs per strategy
    python tools/af_bench.py --runs 50 --json # quick, machine-readable
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pifocus.autofocus import AutofocusParams, Strategy, autofocus, register  # noqa: E402
from pifocus.autofocus.fit import fit_peak  # noqa: E402
from pifocus.autofocus.run import _grid  # noqa: E402
from pifocus.drive import DriveParams, open_drive  # noqa: E402
from pifocus.focus import AnalysisParams, FocusAnalyzer  # noqa: E402

SWEEPS = ROOT.parent / "shared" / "data" / "focus-sweeps"
JUDGEMENTS = [ROOT / "tests" / "data" / "sweep_judgements.json", ROOT / "tests" / "data" / "af_sweep_judgements.json"]
W, H = 640, 480


class ContrastScan(Strategy):
    """The reference: a libcamera-style contrast-detect scan (the Raspberry Pi IPA's
    ``af.cpp`` programmed scan, with its default tuning: a coarse step of 1/12 of the range,
    a fine step of a quarter of it, ``contrastRatio`` 0.75).

    Coarse scan from the near end upwards, stopping once the contrast has fallen below 0.75
    of the best after at least three steps; fine scan from one coarse step below the best
    upwards, stopping the same way (or one coarse step above the best); the peak by a
    parabola through the best fine sample and its neighbours.  Registered by this bench only
    (``--strategies contrast``), as the number to beat.
    """

    name = "contrast"
    params_field = "sweep"
    COARSE_STEPS = 12
    FINE_PER_COARSE = 4
    CONTRAST_RATIO = 0.75

    def search(self, run):
        """Coarse scan, fine scan, parabola."""
        coarse = (run.hi - run.lo) / self.COARSE_STEPS
        self._scan(run, _grid(run.lo, run.hi, self.COARSE_STEPS + 1, run.res))
        best = run.best().position
        fine = _grid(max(run.lo, best - coarse), min(run.hi, best + coarse),
                     2 * self.FINE_PER_COARSE + 1, run.res)
        pts = self._scan(run, fine)
        pts = sorted(pts, key=lambda u: u.position)
        top = max(pts, key=lambda u: u.score)
        i = pts.index(top)
        if 0 < i < len(pts) - 1:
            f = fit_peak([u.position for u in pts[i - 1:i + 2]], [u.score for u in pts[i - 1:i + 2]], "parabola")
            if f is not None:
                return f, min(max(f["peak"], pts[i - 1].position), pts[i + 1].position)
        return None, top.position

    def _scan(self, run, positions):
        """Sample upwards until the contrast falls below CONTRAST_RATIO of the best (>= 3)."""
        got = []
        for x in positions:
            got.append(run.measure(x, approach=True))
            top = max(u.score for u in got)
            if len(got) >= 3 and got[-1].score < self.CONTRAST_RATIO * top:
                break          # past the peak: the contrast has dropped
        return got


register(ContrastScan)


class Kill(Exception):
    """The simulated process death."""


def scenario(rng):
    return dict(
        seed=int(rng.integers(1_000_000)),
        focus_position=float(rng.uniform(80, 920)),
        blur_px_per_step=float(rng.uniform(0.02, 0.08)),
        analogue_gain=float(rng.choice([1.0, 2.0, 4.0, 8.0, 16.0])),
        exposure=float(rng.uniform(0.5, 1.3)),
        start=float(rng.uniform(0, 1000)),
        backlash=float(rng.choice([0.0, rng.uniform(2, 40)])),
        settle=0,
        calibrated=bool(rng.random() < 0.5),
    )


def make_drive(sc, **extra):
    dp = dict(backlash=sc["backlash"] if sc.get("calibrated", True) else 0.0, settle_frames=sc["settle"])
    dp.update({k: extra.pop(k) for k in list(extra) if k in DriveParams.__dataclass_fields__})
    sim = dict(width=W, height=H, seed=sc["seed"], focus_position=sc["focus_position"],
               blur_px_per_step=sc["blur_px_per_step"], analogue_gain=sc["analogue_gain"],
               exposure=sc["exposure"])
    return open_drive("sim", backlash_steps=sc["backlash"], **dp, **sim, **extra)


def lens_error(drive, sc):
    ring = drive.ring
    return float(ring.lens + ring.turned - sc["focus_position"])


def summarize(rows):
    ok = [r for r in rows if r["ok"]]
    frames = np.array([r["frames"] for r in rows]) if rows else np.zeros(1)
    errs = np.array([abs(r["err_dof"]) for r in rows]) if rows else np.zeros(1)
    return {
        "runs": len(rows),
        "success_rate": round(len(ok) / max(1, len(rows)), 4),
        "median_frames": float(np.median(frames)),
        "p95_frames": float(np.percentile(frames, 95)),
        "median_error_dof": round(float(np.median(errs)), 4),
        "p95_error_dof": round(float(np.percentile(errs, 95)), 4),
        "max_error_dof": round(float(errs.max()), 4),
        "median_moves": float(np.median([r["moves"] for r in rows])) if rows else 0,
        "gate_failures": sum(1 for r in rows if not r["success"]),
        "within_dof": round(sum(1 for r in rows if abs(r["err_dof"]) <= 1.0) / max(1, len(rows)), 4),
        "median_confidence": round(float(np.median([r.get("confidence", 0.0) for r in rows])), 3) if rows else 0.0,
        # The success flag tells the truth: success <=> the lens ends within the depth of focus.
        "flag_agreement": round(sum(1 for r in rows if r["success"] == (abs(r["err_dof"]) <= 1.0))
                                / max(1, len(rows)), 4),
    }


def sim_bench(strategy, runs, seed, analyzer, verbose=False, settle=False):
    rng = np.random.default_rng(seed + (10 if settle else 0))
    rows = []
    for i in range(runs):
        sc = scenario(rng)
        if settle:
            sc["settle"] = int(rng.integers(1, 3))
        with make_drive(sc) as d:
            r = autofocus(d, analyzer, AutofocusParams(strategy=strategy), start=sc["start"])
            err = lens_error(d, sc)
            dof = 1.0 / sc["blur_px_per_step"]
            row = {"ok": bool(r.success and abs(err) <= dof), "success": r.success, "frames": r.frames_used,
                   "moves": r.moves, "err_dof": err / dof, "reason": r.reason, "scenario": sc,
                   "confidence": r.confidence}
            rows.append(row)
            if verbose and not row["ok"]:
                print(f"  FAIL {strategy} #{i}: err {err:+.1f} (dof {dof:.1f}) {r.reason} {sc}", file=sys.stderr)
    return rows


def missed_bench(strategy, runs, seed, analyzer, verbose=False):
    """Missed steps; soft limits inside the hard range; count violations and lost positions."""
    rng = np.random.default_rng(seed + 1)
    rows, violations, lost, drifts, excursions, worst = [], 0, 0, [], 0, 0.0
    for i in range(runs):
        sc = scenario(rng)
        sc["focus_position"] = float(rng.uniform(100, 900))
        d = make_drive(sc, missed_step_rate=0.3, missed_step_max=4, min_position=20.0, max_position=980.0,
                       homing="switch", home_side="min")
        lo, hi = d.limits
        commands = []
        d.on_move = lambda drv, a, b: commands.append(b)
        with d:
            r = autofocus(d, analyzer, AutofocusParams(strategy=strategy), start=sc["start"])
            err = lens_error(d, sc)
            dof = 1.0 / sc["blur_px_per_step"]
            violations += sum(1 for c in commands if c < lo - 1e-9 or c > hi + 1e-9)
            # Motor targets beyond the soft limits (before homing, which goes to the switch on purpose):
            # only possible through missed steps, which the drive cannot see until it homes.
            excursions += sum(1 for m in d.ring.commands if m < lo - 1e-9 or m > hi + 1e-9)
            worst = max([worst] + [max(lo - m, m - hi) for m in d.ring.commands])
            within = abs(err) <= dof
            if r.success and not within:
                lost += 1
            missed = d.ring.missed
            missed_now = abs(d.position - d.ring.motor)   # drift the drive does not know about
            # Homing on the limit switch finds the drift the missed steps caused and corrects it
            # (fault injection off for the homing itself, so the check is about homing).
            d.ring.missed_step_rate = 0.0
            drift = d.home()
            drifts.append((missed, drift, abs(d.position - d.ring.motor), abs(abs(drift) - missed_now)))
            rows.append({"ok": bool(r.success and within), "success": r.success, "frames": r.frames_used,
                         "moves": r.moves, "err_dof": err / dof, "reason": r.reason})
            if verbose and not rows[-1]["ok"]:
                print(f"  FAIL missed {strategy} #{i}: err {err:+.1f} (dof {dof:.1f}) {r.reason}", file=sys.stderr)
    after_home = max((x[2] for x in drifts), default=0.0)
    out = summarize(rows)
    out.update({"soft_limit_violations": violations, "lost_positions": lost,
                "motor_targets_outside_soft_limits": excursions,
                "max_motor_excursion_steps": round(float(worst), 1),
                "steps_missed_total": int(sum(x[0] for x in drifts)),
                "homing_drift_found_error_max": float(max((x[3] for x in drifts), default=0.0)),
                "max_position_error_after_homing": float(after_home)})
    return out


def kill_bench(strategy, runs, seed, analyzer, verbose=False):
    """Kill between moves (restore from the state file) and during a move (must home)."""
    rng = np.random.default_rng(seed + 2)
    tmp = tempfile.mkdtemp(prefix="af-kill-")
    rows, lost, violations, uncertain_homed, kills = [], 0, 0, 0, 0
    try:
        for i in range(runs):
            sc = scenario(rng)
            state = os.path.join(tmp, f"drive-{i}.json")
            during = bool(i % 2)   # odd runs: killed mid-move (after the write-ahead record)
            kill_at = int(rng.integers(1, 8))
            d = make_drive(sc, state_file=state, homing="switch", home_side="min")
            sim = d.sim
            count = [0]

            def hook(drv, a, b):
                count[0] += 1
                if count[0] == kill_at:
                    raise Kill()
            if during:
                d.on_moving = hook
            else:
                d.on_move = hook
            lo, hi = d.limits
            try:
                d.open()
                autofocus(d, analyzer, AutofocusParams(strategy=strategy), start=sc["start"])
            except Kill:
                kills += 1
            # The process is gone: no close().  A new process opens the drive over the same lens.
            d2 = open_drive("sim", source=sim, state_file=state,
                            backlash=sc["backlash"] if sc.get("calibrated", True) else 0.0,
                            settle_frames=sc["settle"], homing="switch", home_side="min")
            cmds = []
            d2.on_move = lambda drv, a, b: cmds.append(b)
            with d2:
                if during and count[0] >= kill_at:
                    uncertain_homed += int(d2._homed)
                if abs(d2.position - d2.ring.motor) > 0.5:
                    lost += 1
                    if verbose:
                        print(f"  LOST kill {strategy} #{i}: restored {d2.position} motor {d2.ring.motor}",
                              file=sys.stderr)
                r = autofocus(d2, analyzer, AutofocusParams(strategy=strategy))
                err = lens_error(d2, sc)
                dof = 1.0 / sc["blur_px_per_step"]
                violations += sum(1 for c in cmds if c < lo - 1e-9 or c > hi + 1e-9)
                rows.append({"ok": bool(r.success and abs(err) <= dof), "success": r.success,
                             "frames": r.frames_used, "moves": r.moves, "err_dof": err / dof, "reason": r.reason})
                if verbose and not rows[-1]["ok"]:
                    print(f"  FAIL kill {strategy} #{i}: err {err:+.1f} (dof {dof:.1f}) {r.reason} "
                          f"from {r.curve[0][0] if r.curve else None} {sc}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = summarize(rows)
    out.update({"kills": kills, "lost_positions": lost, "soft_limit_violations": violations,
                "homed_after_mid_move_kill": uncertain_homed})
    return out


def load_judgements():
    sweeps, region = {}, None
    for path in JUDGEMENTS:  # the model engineer's file first; ours fills the gaps
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for name, j in (data.get("sweeps") or {}).items():
            sharpest = j.get("sharpest") or j.get("file")   # our format / the model engineer's
            if name not in sweeps and sharpest:
                # Focus-stacked composites ("expected*") are not frames of a sweep.
                exclude = set(j.get("exclude", [])) | {n for n in _listdir(SWEEPS / name) if n.startswith("expected")}
                sweeps[name] = dict(j, sharpest=sharpest, exclude=sorted(exclude), source=path.name)
                region = region or data.get("region")
    return sweeps, region or [0.35, 0.35, 0.3, 0.3]


def _listdir(d: Path):
    try:
        return os.listdir(d)
    except OSError:
        return []


def replay_folder(src_dir: Path, exclude, tmp: Path) -> Path:
    """The sweep folder to replay: the original, or a temp sweep.csv leaving out excluded files."""
    if not exclude:
        return src_dir
    from pifocus.sources.recorded import natural_sorted, _is_image
    names = [n for n in natural_sorted(os.listdir(src_dir)) if _is_image(n) and n not in exclude]
    out = tmp / src_dir.name
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sweep.csv", "w") as f:
        f.write("file,position\n")
        for i, n in enumerate(names):
            f.write(f"{src_dir / n},{i}\n")
    return out


TRUTH = ROOT / "tests" / "data" / "sweep_truth.json"


def load_truth():
    """The judged truth of every sweep (sharpest frame, accepted range, own ROI), or {}."""
    try:
        return json.loads(TRUTH.read_text())
    except (OSError, ValueError):
        return {}


def replay_bench(strategies, verbose=False, use_cnn=False, model=None):
    """Every strategy from every start position of every judged sweep.

    Counted per sweep and strategy: runs ending within +-1 frame of the judged sharpest
    frame (``within_1``), within the range a photographer accepts (``within_accepted``, from
    ``tests/data/sweep_truth.json``), the frames used, and whether the success flag told the
    truth (``flag_agreement``: success <=> the final frame is in the accepted range).
    """
    if not SWEEPS.is_dir():
        return {"skipped": f"{SWEEPS} not present"}
    judged, region = load_judgements()
    truth = load_truth().get("sweeps", {})
    tmp = Path(tempfile.mkdtemp(prefix="af-replay-"))
    out = {}
    try:
        for name in sorted(os.listdir(SWEEPS)):
            t = truth.get(name)
            if name not in judged and t is None:
                out[name] = {"skipped": "no judgement"}
                continue
            j = judged.get(name, {"exclude": sorted(n for n in _listdir(SWEEPS / name) if n.startswith("expected")),
                                  "source": TRUTH.name})
            if t is not None:
                j = dict(j, sharpest=t["sharpest_file"], source=TRUTH.name)
            folder = replay_folder(SWEEPS / name, set(j.get("exclude", [])), tmp)
            an = FocusAnalyzer(AnalysisParams(use_cnn=use_cnn or model is not None, model=model,
                                              roi=tuple((t or {}).get("roi", region))))
            out[name] = _replay_sweep(name, folder, j, t, an, strategies, verbose)
            an.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _replay_sweep(name, folder, j, t, an, strategies, verbose):
    d = open_drive(f"replay:{folder}")
    files = [os.path.basename(e.path) for e in d.source._entries]
    target = files.index(j["sharpest"])
    accepted = range(t["acceptable"][0], t["acceptable"][1] + 1) if t else range(target - 1, target + 2)
    res = {}
    for strat in strategies:
        n_ok = n_acc = n_agree = 0
        frames, errs = [], []
        for start_i, pos in enumerate(d.positions):
            with open_drive(f"replay:{folder}") as dr:
                r = autofocus(dr, an, AutofocusParams(strategy=strat), start=pos)
                idx = dr.nearest_index(r.final_position)
            e = idx - target
            ok, acc = abs(e) <= 1, idx in accepted
            n_ok += ok
            n_acc += acc
            n_agree += (r.success == acc)
            frames.append(r.frames_used)
            errs.append(e)
            if verbose and not (acc and r.success):
                print(f"  {'FAIL' if not acc else 'FLAG'} replay {name} {strat} start {start_i}: final {files[idx]} "
                      f"(judged {j['sharpest']}, accepted {accepted.start}..{accepted.stop - 1}) "
                      f"success={r.success} {r.reason}", file=sys.stderr)
        n = len(d.positions)
        res[strat] = {"starts": n, "within_1": n_ok, "rate": round(n_ok / n, 4), "frames": frames,
                      "within_accepted": n_acc, "flag_agreement": round(n_agree / n, 4),
                      "median_frames": float(np.median(frames)), "p95_frames": float(np.percentile(frames, 95)),
                      "max_abs_error_frames": int(max(abs(e) for e in errs))}
    res["judged"] = j["sharpest"]
    res["judged_in"] = j["source"]
    return res


def replay_summary(rp, strategies):
    """Per strategy, every replayed run pooled: runs, frames median / p95, share within the
    accepted range, share of runs whose success flag told the truth."""
    out = {}
    if not rp or "skipped" in rp:
        return out
    for s in strategies:
        sweeps = [v[s] for v in rp.values() if s in v]
        allf = [f for v in sweeps for f in v["frames"]]
        tot = sum(v["starts"] for v in sweeps)
        if not tot:
            continue
        out[s] = {"runs": tot, "median_frames": float(np.median(allf)), "p95_frames": float(np.percentile(allf, 95)),
                  "within_accepted": round(sum(v["within_accepted"] for v in sweeps) / tot, 4),
                  "flag_agreement": round(sum(v["flag_agreement"] * v["starts"] for v in sweeps) / tot, 4)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200, help="simulated runs per strategy [200]")
    ap.add_argument("--safety-runs", type=int, default=40, help="missed-step and kill runs per strategy [40]")
    ap.add_argument("--settle-runs", type=int, default=40,
                    help="simulated runs per strategy with 1-2 stale frames after each move [40]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--strategies", default="dfd,model,sweep,contrast",
                    help="comma-separated strategies; 'contrast' is the libcamera-style reference scan "
                         "[dfd,model,sweep,contrast]")
    ap.add_argument("--no-replay", action="store_true")
    ap.add_argument("--cnn", action="store_true",
                    help="also run the model strategy with the shipped CNN loaded (its confidence "
                         "short-cuts the wide search)")
    ap.add_argument("--model", metavar="MODEL.tflite", default=None,
                    help="judge every run (simulated and replayed) with this model loaded, as "
                         "`pifocus autofocus` does with the CNN on (dfd jumps by a blur head only with "
                         "[autofocus.dfd] use_head) [default: Laplacian-only analysis]")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failure on stderr")
    args = ap.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    an = FocusAnalyzer(AnalysisParams(use_cnn=args.model is not None, model=args.model))
    t0 = time.time()
    report = {"sim": {}, "settle": {}, "missed_steps": {}, "kill": {}, "replay": {}}
    for s in strategies:
        if args.runs:
            report["sim"][s] = summarize(sim_bench(s, args.runs, args.seed, an, args.verbose))
        if args.settle_runs:
            report["settle"][s] = summarize(sim_bench(s, args.settle_runs, args.seed, an, args.verbose, settle=True))
        if args.safety_runs:
            report["missed_steps"][s] = missed_bench(s, args.safety_runs, args.seed, an, args.verbose)
            report["kill"][s] = kill_bench(s, args.safety_runs, args.seed, an, args.verbose)
    if args.cnn:
        try:
            an_cnn = FocusAnalyzer(AnalysisParams())
        except Exception as e:  # the model may not be shipped yet
            report["sim_cnn"] = {"skipped": f"CNN unavailable: {e}"}
        else:
            report["sim_cnn"] = {"model": summarize(sim_bench("model", args.runs, args.seed, an_cnn, args.verbose))}
    if not args.no_replay:
        report["replay"] = replay_bench(strategies, args.verbose, model=args.model)
        report["replay_summary"] = replay_summary(report["replay"], strategies)
        if args.cnn and "model" in report.get("sim_cnn", {}):
            report["replay_cnn"] = replay_bench(["model"], args.verbose, use_cnn=True)
    report["time_s"] = round(time.time() - t0, 1)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"AF bench ({args.runs} sim runs/strategy, {args.safety_runs} safety runs, seed {args.seed}, "
          f"{W}x{H}, {'model ' + args.model if args.model else 'Laplacian-only analysis'})")
    print("\nSimulated scenes (success = AF ok and lens within depth of focus):" if report["sim"] else "")
    print(f"  {'strategy':10s} {'success':>8s} {'median fr':>10s} {'p95 fr':>7s} {'med err/DOF':>12s} "
          f"{'p95 err/DOF':>12s} {'gate fails':>10s} {'flag true':>9s} {'in DOF':>7s} {'med conf':>8s}")
    for s, v in report["sim"].items():
        print(f"  {s:10s} {v['success_rate']:8.1%} {v['median_frames']:10.1f} {v['p95_frames']:7.1f} "
              f"{v['median_error_dof']:12.3f} {v['p95_error_dof']:12.3f} {v['gate_failures']:10d} "
              f"{v['flag_agreement']:9.1%} {v['within_dof']:7.1%} {v['median_confidence']:8.2f}")
    if report.get("sim_cnn"):
        v = report["sim_cnn"].get("model")
        if v is None:
            print("\nWith the CNN:", report["sim_cnn"]["skipped"])
        else:
            print("\nWith the CNN loaded (confidence short-cuts the wide search):")
            print(f"  {'model+cnn':10s} {v['success_rate']:8.1%} {v['median_frames']:10.1f} {v['p95_frames']:7.1f} "
                  f"{v['median_error_dof']:12.3f} {v['p95_error_dof']:12.3f} {v['gate_failures']:10d}")
    if report["settle"]:
        print("\nWith 1-2 stale (pipelined) frames after every move, discarded and counted:")
        for s, v in report["settle"].items():
            print(f"  {s:10s} {v['success_rate']:8.1%} {v['median_frames']:10.1f} {v['p95_frames']:7.1f} "
                  f"{v['median_error_dof']:12.3f} {v['p95_error_dof']:12.3f} {v['gate_failures']:10d}")
    for key, title in (("missed_steps", "Missed steps (30% of moves lose 1-4 steps)"),
                       ("kill", "Process kill between / during moves")):
        if report[key]:
            print(f"\n{title}:")
            for s, v in report[key].items():
                extra = {k: v[k] for k in v if k in ("soft_limit_violations", "lost_positions", "kills",
                                                     "homed_after_mid_move_kill", "steps_missed_total",
                                                     "max_position_error_after_homing",
                                                     "homing_drift_found_error_max",
                                                     "motor_targets_outside_soft_limits",
                                                     "max_motor_excursion_steps")}
                print(f"  {s:10s} success {v['success_rate']:.1%}, median frames {v['median_frames']:.0f}; {extra}")
    rp = report["replay"]
    if rp:
        print("\nReplay of real sweeps (final frame within +-1 of the judged sharpest, from every start):")
        if "skipped" in rp:
            print("  skipped:", rp["skipped"])
        else:
            for name, v in rp.items():
                if "skipped" in v:
                    print(f"  {name:20s} skipped ({v['skipped']})")
                    continue
                cells = "  ".join(f"{s}: {v[s]['within_1']}/{v[s]['starts']}, accepted {v[s]['within_accepted']}, "
                                  f"flag {v[s]['flag_agreement']:.0%} ({v[s]['median_frames']:.0f} fr)"
                                  for s in strategies)
                print(f"  {name:20s} judged {v['judged']:34s} {cells}  [{v['judged_in']}]")
            for s in strategies:
                allf = [f for v in rp.values() if s in v for f in v[s]["frames"]]
                rp_s = {"runs": len(allf), "median_frames": float(np.median(allf)) if allf else 0.0,
                        "p95_frames": float(np.percentile(allf, 95)) if allf else 0.0}
                print(f"  all sweeps, {s}: {rp_s['runs']} runs, frames median {rp_s['median_frames']:.1f}, "
                      f"p95 {rp_s['p95_frames']:.1f}")
                tot = sum(v[s]["starts"] for v in rp.values() if s in v)
                okn = sum(v[s]["within_1"] for v in rp.values() if s in v)
                acc = sum(v[s]["within_accepted"] for v in rp.values() if s in v)
                agree = sum(v[s]["flag_agreement"] * v[s]["starts"] for v in rp.values() if s in v)
                fr = [v[s]["median_frames"] for v in rp.values() if s in v]
                print(f"  all sweeps, {s}: within 1 {okn}/{tot} = {okn / max(1, tot):.1%}, accepted "
                      f"{acc / max(1, tot):.1%}, success flag true {agree / max(1, tot):.1%}, "
                      f"median of sweep medians {np.median(fr) if fr else 0:.0f} frames")
    rc = report.get("replay_cnn")
    if rc and "skipped" not in rc:
        tot = sum(v["model"]["starts"] for v in rc.values() if "model" in v)
        okn = sum(v["model"]["within_1"] for v in rc.values() if "model" in v)
        cells = ", ".join(f"{n} {v['model']['within_1']}/{v['model']['starts']} ({v['model']['median_frames']:.0f} fr)"
                          for n, v in rc.items() if "model" in v)
        print(f"  with the CNN loaded, model: {okn}/{tot} = {okn / max(1, tot):.1%}  [{cells}]")
    print(f"\n({report['time_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
