#!/usr/bin/env python3
"""Measure ``pifocus cull``: accuracy on synthetic photos with known faults, agreement on the
real MFIFB pairs, and speed.  Prints medians and ratios; asserts nothing.

  python tools/cull_bench.py accuracy [--scenes 8] [--size 1200]
      keep/reject on synthetic photos: dead-leaves scenes (pifocus.focus.blurest.dead_leaves)
      sharp (keep) or with disk defocus, motion streaks, under/over exposure or heavy noise
      (reject); prints % correct per fault and overall.
  python tools/cull_bench.py card [--scenes 4] [--size 800] [--jobs 2] [--reject-rating 1] [--scratch DIR]
      the same faults as accuracy on a card with unreadable files and a foreign sidecar,
      through ``pifocus cull --json`` itself: keep/reject correct, unreadable files counted and
      named, originals byte-identical (SHA-256), every sidecar read back by exiftool
      (tools/cull_card.py; also runs alone with the same options).
  python tools/cull_bench.py mfifb [--data ../shared/data] [--subject centre]
      on every MFIFB A/B pair: is the photo sharp on the centre subject ranked above its twin?
      The reference is the pair's own tile energies on the centre box (the dataset builder's
      rule: a tile votes when one image has >= 5x the Laplacian energy of the other; the pair
      counts when >= 8 tiles vote and >= 75 % agree); ambiguous pairs are counted apart.
      Also counts motion-blur flags (all false: the scenes are static).
  python tools/cull_bench.py sweeps [--data ../shared/data]
      every real focus sweep as a burst: the frame ranked sharpest on the judged region
      against the frame judged sharpest by eye and its accepted range (tests/data/sweep_truth.json).
  python tools/cull_bench.py speed [--mp 24 12] [--repeat 5] [--card 12] [--runs 3] [--jobs 1 2]
                                   [--scratch DIR]
      a 24 MP and a 12 MP JPEG (written to --scratch): decode + score, median wall and CPU
      ms (CPU time is what a shared machine cannot inflate), ms per stage; then photos per
      second over a card of 12 MP JPEGs with 1 and 2 processes, the median of --runs runs,
      CPU ms per photo, model loads per run and the load average around every run.
"""

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pifocus.cull import CullParams  # noqa: E402
from pifocus.focus.blurest import dead_leaves  # noqa: E402
from pifocus.sources.simulated import defocus  # noqa: E402


def motion_blur(img: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """``img`` (float32) smeared by a straight motion of ``length_px`` at ``angle_deg``
    (counter-clockwise from horizontal, as seen), anti-aliased line kernel."""
    import cv2
    n = int(math.ceil(length_px)) + 3
    n += 1 - n % 2
    ss = 8
    big = np.zeros((n * ss, n * ss), np.float32)
    c = (n * ss - 1) / 2.0
    dx, dy = math.cos(math.radians(angle_deg)), -math.sin(math.radians(angle_deg))
    h = length_px * ss / 2.0
    cv2.line(big, (int(round(c - dx * h)), int(round(c - dy * h))), (int(round(c + dx * h)), int(round(c + dy * h))),
             1.0, ss)
    k = cv2.resize(big, (n, n), interpolation=cv2.INTER_AREA)
    k /= k.sum()
    return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)


def to_u8(img: np.ndarray, rng, noise_dn: float = 1.5, gain: float = 1.0) -> np.ndarray:
    """Scene (float 0..1) -> 8-bit luma with exposure ``gain`` and Gaussian noise."""
    return np.clip(img * gain * 255.0 + rng.normal(0, noise_dn, img.shape), 0, 255).astype(np.uint8)


#: The synthetic faults: name -> (expected verdict, function(scene, rng) -> uint8 luma).
FAULTS = {
    "sharp": ("keep", lambda s, rng: to_u8(s, rng)),
    "sharp-0.7px": ("keep", lambda s, rng: to_u8(defocus(s, 0.7), rng)),
    "sharp-noise4": ("keep", lambda s, rng: to_u8(s, rng, noise_dn=4.0)),
    "defocus-5px": ("reject", lambda s, rng: to_u8(defocus(s, 5.0), rng)),
    "defocus-8px": ("reject", lambda s, rng: to_u8(defocus(s, 8.0), rng)),
    "motion-12px": ("reject", lambda s, rng: to_u8(motion_blur(s, 12.0, rng.uniform(0, 180)), rng)),
    "motion-20px": ("reject", lambda s, rng: to_u8(motion_blur(s, 20.0, rng.uniform(0, 180)), rng)),
    "under-3EV": ("reject", lambda s, rng: to_u8(s, rng, gain=0.125)),
    "over-2EV": ("reject", lambda s, rng: to_u8(s, rng, gain=3.0)),
    "noise-30DN": ("reject", lambda s, rng: to_u8(s, rng, noise_dn=30.0)),
}


def synthetic_set(n_scenes: int = 4, size_px: int = 800, seed: int = 0):
    """``[(fault, expected verdict, uint8 luma)]`` over ``n_scenes`` dead-leaves scenes."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_scenes):
        scene = dead_leaves(size_px, seed=seed * 1000 + k, n_discs=max(500, size_px * 4))
        for name, (want, make) in FAULTS.items():
            out.append((name, want, make(scene, rng)))
    return out


def make_scorer(params: CullParams = CullParams(), use_cnn: bool = True):
    """``score(luma, path) -> CullResult`` with one analyzer and subject finder (this process)."""
    from pifocus.cull.scoring import cull_analysis, score_luma
    from pifocus.cull.subject import SubjectFinder
    from pifocus.focus import AnalysisParams, FocusAnalyzer
    analyzer = FocusAnalyzer(cull_analysis(AnalysisParams(use_cnn=use_cnn)))   # as the cull's workers
    finder = SubjectFinder(params.subject, face_model=params.face_model)
    return lambda luma, path="synthetic": score_luma(luma, path, analyzer, finder, params)


def cmd_accuracy(args) -> int:
    score = make_scorer()
    per = {}
    for name, want, luma in synthetic_set(args.scenes, args.size):
        r = score(luma)
        per.setdefault(name, []).append((r.verdict == want, r))
    total = sum(len(v) for v in per.values())
    ok = sum(c for v in per.values() for c, _ in v)
    print(f"{'fault':14s} {'want':6s} correct  verdicts  median blur_px  motion")
    for name, rows in per.items():
        verdicts = ",".join(sorted({r.verdict for _, r in rows}))
        blur = statistics.median([r.blur_px for _, r in rows if math.isfinite(r.blur_px)] or [math.nan])
        mot = sum(r.motion_blur for _, r in rows)
        print(f"{name:14s} {FAULTS[name][0]:6s} {sum(c for c, _ in rows):3d}/{len(rows):<3d}  {verdicts:16s} "
              f"{blur:6.2f}  {mot}/{len(rows)}")
        for c, r in rows:
            if not c:
                print(f"    wrong: {r.verdict}: {r.reason}")
    print(f"overall: {ok}/{total} = {100.0 * ok / total:.1f} % correct keep/reject")
    return 0


def centre_reference(a: np.ndarray, b: np.ndarray, box, tile: int = 32, margin: float = 5.0,
                     min_votes: int = 8, agree: float = 0.75):
    """``+1`` (A sharp on the box), ``-1`` (B), ``0`` (ambiguous) from tile Laplacian energies."""
    import cv2
    x, y, w, h = box
    ea, eb = [], []
    for img, out in ((a, ea), (b, eb)):
        lap = cv2.Laplacian(img[y:y + h, x:x + w].astype(np.float32), cv2.CV_32F)
        th, tw = lap.shape[0] // tile, lap.shape[1] // tile
        if th == 0 or tw == 0:
            return 0
        out.append(lap[:th * tile, :tw * tile].reshape(th, tile, tw, tile).var(axis=(1, 3)).ravel())
    ea, eb = ea[0], eb[0]
    strong = np.maximum(ea, eb) > 60.0
    va = int(np.sum(strong & (ea >= margin * eb)))
    vb = int(np.sum(strong & (eb >= margin * ea)))
    if va + vb < min_votes:
        return 0
    if va >= agree * (va + vb):
        return 1
    if vb >= agree * (va + vb):
        return -1
    return 0


def cmd_mfifb(args) -> int:
    from pifocus.cull.bursts import burst_order, sharpness_key
    from pifocus.cull.inputs import decode_photo
    root = Path(args.data) / "multifocus-pairs" / "mfifb"
    if not root.is_dir():
        print(f"no MFIFB folder at {root}")
        return 2
    score = make_scorer(CullParams(subject=args.subject))
    agree = disagree = ambiguous = photos = motion_flags = 0
    wrong = []
    alt = {"burst_order (the cull's)": 0, "sharpness_key (motion, blur_px, edge_sigma, p)": 0,
           "edge_sigma_px alone": 0, "CNN p_in_focus alone": 0,
           "analyzer sharpness alone": 0}
    for scene in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in scene.iterdir() if f.stem.endswith(("_A", "_B")))
        if len(files) != 2:
            continue
        (da, _), (db, _) = decode_photo(str(files[0])), decode_photo(str(files[1]))
        if da is None or db is None or da.luma.shape != db.luma.shape:
            continue
        ra, rb = score(da.luma, str(files[0])), score(db.luma, str(files[1]))
        photos += 2
        motion_flags += int(ra.motion_blur) + int(rb.motion_blur)
        for r in (ra, rb):
            if r.motion_blur:
                print(f"  motion flag (false): {os.path.basename(r.path)}: {r.motion_px:.1f} px at "
                      f"{r.motion_angle_deg:.0f} deg")
        ref = centre_reference(da.luma, db.luma, ra.subject.box_px, min_votes=args.min_votes, agree=args.agree)
        if ref == 0:
            ambiguous += 1
            continue
        a_first = burst_order([ra, rb])[0] == 0
        want_a = ref == 1
        alt["burst_order (the cull's)"] += a_first == want_a
        alt["sharpness_key (motion, blur_px, edge_sigma, p)"] += (sharpness_key(ra) < sharpness_key(rb)) == want_a
        alt["edge_sigma_px alone"] += (ra.edge_sigma_px < rb.edge_sigma_px) == want_a
        alt["CNN p_in_focus alone"] += (ra.p_in_focus > rb.p_in_focus) == want_a
        alt["analyzer sharpness alone"] += (ra.sharpness > rb.sharpness) == want_a
        if a_first == want_a:
            agree += 1
        else:
            disagree += 1
            wrong.append(f"{scene.name}: ref {'A' if ref == 1 else 'B'}; A {ra.verdict} blur {ra.blur_px:.2f} "
                         f"sigma {ra.edge_sigma_px:.3f} p {ra.p_in_focus:.2f} | B {rb.verdict} blur "
                         f"{rb.blur_px:.2f} sigma {rb.edge_sigma_px:.3f} p {rb.p_in_focus:.2f}")
    n = agree + disagree
    for w in wrong:
        print("  disagree:", w)
    print(f"MFIFB pairs with a clear centre reference (>= {args.min_votes} tiles vote, >= {args.agree:.0%} agree): "
          f"{n}, ambiguous (not counted): {ambiguous}")
    print(f"agreement (sharp-on-centre photo ranked first): {agree}/{n} = {100.0 * agree / max(n, 1):.1f} %")
    for k, v in alt.items():
        print(f"  ranking by {k}: {v}/{n} = {100.0 * v / max(n, 1):.1f} %")
    print(f"motion blur flagged on {motion_flags} of {photos} photos (MFIFB scenes are static: every flag is false)")
    return 0


def _rank_sum(rs, p=True):
    """Per photo: the sum of its ranks by edge sigma (narrow first), analyzer sharpness (high
    first) and, with ``p``, CNN probability (high first)."""
    n = len(rs)
    keys = [lambda r: r.edge_sigma_px, lambda r: -r.sharpness] + ([lambda r: -r.p_in_focus] if p else [])
    total = [0.0] * n
    for key in keys:
        for rank, i in enumerate(sorted(range(n), key=lambda i: key(rs[i]))):
            total[i] += rank
    return total


def _rank_sum3(rs):
    """Per photo: the sum of its ranks by edge sigma, analyzer sharpness and ``blur_px`` (ties
    share their mean rank, as :func:`pifocus.cull.bursts.burst_order`)."""
    from pifocus.cull.bursts import _ranks
    return [a + b + c for a, b, c in zip(_ranks([r.edge_sigma_px for r in rs]), _ranks([-r.sharpness for r in rs]),
                                         _ranks([r.blur_px for r in rs]))]


class _FixedSubject:
    """A subject finder that always answers the same normalized region (the sweep truth's)."""

    def __init__(self, roi):
        self.roi = roi

    def find(self, luma):
        from pifocus.cull import Subject
        h, w = luma.shape
        x, y, rw, rh = self.roi
        return Subject((int(x * w), int(y * h), int(rw * w), int(rh * h)), "truth-region")


def cmd_sweeps(args) -> int:
    """Every real focus sweep as a burst: is the frame the cull ranks sharpest on the judged
    region the judged sharpest one, or within its accepted range (tests/data/sweep_truth.json)?"""
    import json
    from pifocus.cull.bursts import burst_order
    from pifocus.cull.inputs import decode_photo, list_photos
    from pifocus.cull.scoring import cull_analysis, score_luma
    from pifocus.focus import AnalysisParams, FocusAnalyzer
    from pifocus.cull.bursts import shared_regions
    from pifocus.cull.subject import SubjectFinder
    truth = json.loads((ROOT / "tests" / "data" / "sweep_truth.json").read_text())
    finder = _FixedSubject(truth["region"]) if args.finder == "truth" else SubjectFinder(args.finder)
    analyzer = FocusAnalyzer(cull_analysis(AnalysisParams()))   # as the cull's workers
    exact = ok = n = alone_ok = 0
    alts = {}
    for name, t in sorted(truth["sweeps"].items()):
        folder = Path(args.data) / "focus-sweeps" / name
        if not folder.is_dir():
            continue
        photos, _ = list_photos([str(folder)])
        photos = [p for p in photos if not os.path.basename(p).startswith("expected")]
        pairs = [(d.luma, p) for p in photos for d in [decode_photo(p)[0]] if d is not None]
        lumas = [lu for lu, _p in pairs]
        if args.finder == "truth":   # the sweep's own judged region where it has one (beetle, shotgun)
            finder = _FixedSubject(t.get("roi", truth["region"]))
        rs = [score_luma(lu, p, analyzer, finder, CullParams()) for lu, p in pairs]
        # the accepted range is [first, last] (both kept), not a list of frames
        a0, a1 = t.get("acceptable", [t["sharpest"], t["sharpest"]])
        good = {t["sharpest"], *range(int(a0), int(a1) + 1)}
        if args.finder != "truth":  # each frame on its own region, then the burst on one shared region
            alone = burst_order(rs)[0]
            alone_ok += alone in good
            for r in rs:
                r.time_s = 0.0
            rs = [score_luma(lu, r.path, analyzer, finder, CullParams(), subject=sh) if sh else r
                  for lu, r, sh in zip(lumas, rs, shared_regions(rs, 1.0))]
            ref = next((os.path.basename(r.subject.shared_from) for r in rs if r.subject.shared_from), "-")
            print(f"{name:28s} per-frame regions: best {alone:2d} ({'ok' if alone in good else 'WRONG'}); "
                  f"shared region from {ref}")
        if len(rs) != t["frames"]:
            print(f"{name}: {len(rs)} frames read, truth has {t['frames']}; skipped")
            continue
        best = burst_order(rs)[0]
        rsum, rsum3 = _rank_sum(rs), _rank_sum3(rs)
        for label, key in (("rank-sum(sigma, sharpness, p)", lambda i: rsum[i]),
                           ("rank-sum(sigma, sharpness)", lambda i: _rank_sum(rs, p=False)[i]),
                           ("edge_sigma", lambda i: rs[i].edge_sigma_px), ("-sharpness", lambda i: -rs[i].sharpness),
                           ("-p_in_focus", lambda i: -rs[i].p_in_focus), ("blur_px", lambda i: rs[i].blur_px),
                           ("rank-sum(sigma, sharpness, blur_px)", lambda i: rsum3[i])):
            alt = min(range(len(rs)), key=key)
            alts[label] = alts.get(label, 0) + (alt in good)
        if args.verbose:
            for i, r in enumerate(rs):
                print(f"   {i:2d} blur {r.blur_px:5.2f} sigma {r.edge_sigma_px:.3f} p {r.p_in_focus:.2f} "
                      f"sharp {r.sharpness:9.1f} motion {r.motion_blur} {'*' if i in good else ''}")
        n += 1
        exact += best == t["sharpest"]
        ok += best in good
        print(f"{name:28s} cull best {best:2d}, judged sharpest {t['sharpest']:2d}, accepted {sorted(good)}: "
              f"{'exact' if best == t['sharpest'] else 'accepted' if best in good else 'WRONG'}")
    print(f"sweeps ({args.finder} region): best frame exact {exact}/{n}, within the accepted range {ok}/{n}")
    if args.finder != "truth":
        print(f"  each frame on its own {args.finder} region instead: within the accepted range {alone_ok}/{n}")
    for k, v in alts.items():
        print(f"  best by {k} alone: within the accepted range {v}/{n}")
    return 0


def _write_jpeg(path: str, mp: float, seed: int = 0) -> None:
    import cv2
    w = int(round(math.sqrt(mp * 1e6 * 1.5)))
    h = int(round(w / 1.5))
    tile = dead_leaves(1024, seed=seed, n_discs=4000)
    rng = np.random.default_rng(seed)
    reps = (math.ceil(h / 1024), math.ceil(w / 1024))
    img = np.tile(tile, reps)[:h, :w]
    u8 = to_u8(img, rng)
    bgr = cv2.merge([u8, np.roll(u8, 7, axis=1), np.roll(u8, 13, axis=0)])
    cv2.imwrite(path, bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])


def cmd_speed(args) -> int:
    from pifocus.cull.inputs import decode_photo
    scratch = args.scratch or tempfile.mkdtemp(prefix="cull_bench_")
    os.makedirs(scratch, exist_ok=True)
    score = make_scorer()
    for mp in args.mp:
        path = os.path.join(scratch, f"bench_{mp:g}mp.jpg")
        if not os.path.exists(path):
            _write_jpeg(path, mp)
        rows = []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            dec, _ = decode_photo(path)
            t1, c1 = time.perf_counter(), time.process_time()
            r = score(dec.luma, path)
            t2, c2 = time.perf_counter(), time.process_time()
            rows.append(((t1 - t0) * 1e3, (t2 - t1) * 1e3, (c1 - c0) * 1e3, (c2 - c1) * 1e3, r.timings_ms))
        med = [statistics.median(x[i] for x in rows) for i in range(4)]
        stages = {k: statistics.median(x[4][k] for x in rows) for k in ("subject", "analyzer", "blur", "exposure")}
        print(f"{mp:g} MP JPEG ({dec.luma.shape[1]}x{dec.luma.shape[0]}), median of {args.repeat}: "
              f"wall decode {med[0]:.0f} ms + score {med[1]:.0f} ms = {med[0] + med[1]:.0f} ms; "
              f"CPU decode {med[2]:.0f} ms + score {med[3]:.0f} ms = {med[2] + med[3]:.0f} ms; "
              "score stages (wall ms): " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
    print(f"load average now: {', '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs "
          "(wall times above include waiting for the CPU; CPU times do not)")
    card = os.path.join(scratch, "card12")
    os.makedirs(card, exist_ok=True)
    paths = []
    for k in range(args.card):
        p = os.path.join(card, f"IMG_{k:04d}.jpg")
        if not os.path.exists(p):
            _write_jpeg(p, 12, seed=k)
        paths.append(p)
    throughput(paths, args.runs, tuple(args.jobs))
    return 0


def _load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def throughput(paths, runs: int, jobs_list=(1, 2)) -> dict:
    """Photos per second over ``paths`` with each number of processes, the median of ``runs``
    runs (alternating, so a change of the machine's load falls on both); CPU time per photo
    (decode + score, summed over the workers: what a shared machine cannot inflate); the load
    average before and after every run.  Bursts are off (``burst_gap_s`` 0): every photo is
    scored once."""
    from pifocus.cull.batch import score_photos
    from pifocus.focus import AnalysisParams
    params = CullParams(burst_gap_s=0.0)
    rows = {j: [] for j in jobs_list}
    print(f"throughput: card of {len(paths)} x 12 MP JPEG, {runs} runs per setting, {os.cpu_count()} CPUs")
    for run in range(runs):
        for jobs in jobs_list:
            before = _load()
            st = {}
            t0 = time.perf_counter()
            res, _, bad = score_photos(paths, AnalysisParams(), params, jobs=jobs, stats=st)
            dt = time.perf_counter() - t0
            rows[jobs].append((len(res) / dt, st["cpu_s"] / max(1, len(res)), dt, st))
            print(f"  run {run + 1} jobs {jobs}: {dt:6.2f} s wall, {len(res) / dt:5.2f} photos/s, CPU "
                  f"{1e3 * st['cpu_s'] / max(1, len(res)):5.0f} ms/photo, {st['cpu_s'] / dt:4.2f} cores busy, "
                  f"{st['processes']} process(es), "
                  f"{st['model_loads']} model load(s), unreadable {len(bad)}; load average {before} -> {_load()}")
    out = {}
    for jobs, rs in rows.items():
        rate = statistics.median(r[0] for r in rs)
        cpu = statistics.median(r[1] for r in rs)
        out[jobs] = rate
        print(f"jobs {jobs}: median {rate:.2f} photos/s (runs {', '.join(f'{r[0]:.2f}' for r in rs)}), "
              f"median CPU {1e3 * cpu:.0f} ms/photo, wall incl. worker start-up and model load")
    if 1 in out and 2 in out:
        paired = [b[0] / a[0] for a, b in zip(rows[1], rows[2])]
        print(f"ratio 2 processes / 1: {out[2] / out[1]:.2f} of the medians; per run (back to back, so "
              f"under the same load) {', '.join(f'{v:.2f}' for v in paired)}, median {statistics.median(paired):.2f}")
        cpu1 = statistics.median(r[1] for r in rows[1])
        print(f"CPU-bound ceiling on an idle machine: {1.0 / cpu1:.2f} photos/s per core "
              f"({os.cpu_count()} cores: {os.cpu_count() / cpu1:.2f} photos/s)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("--scenes", type=int, default=8)
    a.add_argument("--size", type=int, default=1200)
    m = sub.add_parser("mfifb")
    m.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    m.add_argument("--subject", default="centre", choices=("auto", "face", "detail", "centre"))
    m.add_argument("--agree", type=float, default=0.75, help="share of voting tiles the reference needs [0.75]")
    m.add_argument("--min-votes", type=int, default=8, help="voting tiles the reference needs [8]")
    w = sub.add_parser("sweeps")
    w.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    w.add_argument("--verbose", action="store_true", help="every frame's measures")
    w.add_argument("--finder", default="truth", choices=("truth", "auto", "detail"),
                   help="the judged region of the truth file, or the cull's finder (then per-frame vs shared)")
    s = sub.add_parser("speed")
    s.add_argument("--mp", type=float, nargs="+", default=[24.0, 12.0])
    s.add_argument("--repeat", type=int, default=5)
    s.add_argument("--card", type=int, default=12, help="12 MP JPEGs in the throughput card [12]")
    s.add_argument("--runs", type=int, default=3, help="throughput runs per number of processes [3]")
    s.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="numbers of processes [1 2]")
    s.add_argument("--scratch")
    sys.path.insert(0, str(ROOT / "tools"))
    import cull_card  # the card command lives in its own file, to keep this one short
    cull_card.add_arguments(sub.add_parser("card"))
    args = ap.parse_args(argv)
    cmds = {"card": cull_card.cmd_card, "accuracy": cmd_accuracy, "mfifb": cmd_mfifb, "sweeps": cmd_sweeps, "speed": cmd_speed}
    return cmds[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
