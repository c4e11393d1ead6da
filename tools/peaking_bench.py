#!/usr/bin/env python3
"""Does focus peaking track focus?  Coverage of the ROI by peaking on the simulated lens at
best focus and around it, three ways:

* ``preview``: peaking found on the downscaled preview (``[web] peaking_resolution =
  "preview"``, how the page worked before);
* ``sensor``: found at sensor resolution and reduced onto the preview (the default now);
* ``zoom 1x``: the magnifier's full-resolution crop at the ROI centre (``GET /api/zoom``).

Coverage is the share (%) of ROI pixels painted; "vs best" divides by the value at best focus.
The sim lens is sharp at 500 of 0..1000, so +-2 % of the range is +-20 steps.

    python tools/peaking_bench.py                   # 2028x1520 (HQ Camera mode), 640 px preview
    python tools/peaking_bench.py --size 1332x990 --json
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pifocus.focus import AnalysisParams, FocusAnalyzer  # noqa: E402
from pifocus.sources.simulated import SimulatedSource  # noqa: E402
from pifocus.web import PEAKING_COLOURS, WebParams  # noqa: E402
from pifocus.web import magnifier as mag  # noqa: E402
from pifocus.web.preview import PreviewHub  # noqa: E402


def painted_pct(bgr: np.ndarray, roi=(0.2, 0.2, 0.6, 0.6)) -> float:
    """% of the ROI's pixels in the peaking colour (red)."""
    h, w = bgr.shape[:2]
    x, y, rw, rh = roi
    sub = bgr[int(y * h):int((y + rh) * h), int(x * w):int((x + rw) * w)]
    return 100.0 * float(np.all(sub == PEAKING_COLOURS["red"], axis=2).mean())


def main(argv=None) -> int:
    """Print the coverage table (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2028x1520", help="sim frame size WxH [2028x1520]")
    ap.add_argument("--preview-width", type=int, default=640, help="[web] preview_width [640]")
    ap.add_argument("--offsets", default="-50,-20,-10,0,10,20,50", help="lens offsets from best focus (steps)")
    ap.add_argument("--json", action="store_true", help="one JSON object")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    hubs = {k: PreviewHub(WebParams(preview_width=args.preview_width, peaking_resolution=k))
            for k in ("preview", "sensor")}
    an = FocusAnalyzer(AnalysisParams(use_cnn=False))
    rows = []
    with SimulatedSource(width=w, height=h) as src:
        best = src.params.focus_position
        for off in (int(v) for v in args.offsets.split(",")):
            src.lens_position = best + off
            frame = src.read()
            rep = an.analyze(frame, track=False)
            row = {"offset": off, "position": best + off, "pct_of_range": 100.0 * off / src.params.range_steps,
                   "sharpness": round(rep.sharpness, 1)}
            for k, hub in hubs.items():
                row[k] = round(painted_pct(hub.render(frame.luma, rep.noise_sigma_dn, rep.roi)[0]), 2)
            zb, _ = mag.render_zoom(frame.luma, mag.ZoomParams(0.5, 0.5, 1, 480, 360),
                                    hubs["sensor"].peaking_mask_fn(rep.noise_sigma_dn), PEAKING_COLOURS["red"])
            row["zoom_1x"] = round(painted_pct(zb, (0, 0, 1, 1)), 2)
            rows.append(row)
    b = next(r for r in rows if r["offset"] == 0)
    for r in rows:
        for k in ("preview", "sensor", "zoom_1x", "sharpness"):
            r[k + "_vs_best"] = round(r[k] / b[k], 3) if b[k] else None
    if args.json:
        print(json.dumps({"size": args.size, "preview_width": args.preview_width, "rows": rows}))
        return 0
    print(f"sim {args.size}, preview {args.preview_width} px, ROI = central 60 %; coverage % of the ROI (vs best)")
    print(f"{'offset':>6} {'% range':>7} {'sharpness':>10} {'preview':>15} {'sensor':>15} {'zoom 1x':>15}")
    for r in rows:
        print(f"{r['offset']:6d} {r['pct_of_range']:7.1f} {r['sharpness']:10.0f} "
              + " ".join(f"{r[k]:7.2f} ({r[k + '_vs_best']:.2f})" for k in ("preview", "sensor", "zoom_1x")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
