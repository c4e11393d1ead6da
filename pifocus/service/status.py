"""What the service says about itself: the status document (``GET /api/status``, fields in
``pifocus/web/API.md``), the one-line ``STATUS=`` for systemd, and the frame rate behind both.

The functions read a running :class:`~pifocus.service.Service` (its public attributes:
``pipeline``, ``source``, ``hub``, ``drive``, ``drive_lock``, ``cfg``, ``fps``, ``ready``,
``frame_size``, ``started`` and the ``*_error`` texts) and change nothing.
"""

import collections
import time
from typing import Optional

from .. import __version__
from ..exc import PiFocusError

#: Fields of a focus report copied into the status document.
REPORT_FIELDS = ("in_focus", "blur_px", "blur_px_sensor", "motion_blur", "coc_px", "sharpness", "meter", "peak_sharpness", "p_in_focus", "judgeable",
                 "in_focus_fraction", "informative_fraction", "noise_sigma_dn", "roi", "frame",
                 "lens_position", "timestamp_ns", "timings_ms", "exposure")


class FrameRate:
    """Frames analysed per second over the last ~2 s, from the frames' arrival times."""

    def __init__(self):
        self._times = collections.deque(maxlen=256)

    def tick(self, now: float) -> None:
        """Count one frame analysed at ``now`` (``time.monotonic()`` seconds)."""
        self._times.append(now)

    @property
    def fps(self) -> float:
        """Frames per second over the last ~2 s (0 when none); robust to the odd late or
        early frame, unlike an average of 1/dt."""
        ts = list(self._times)
        if len(ts) < 2 or time.monotonic() - ts[-1] > 2.0:
            return 0.0
        recent = [t for t in ts if t >= ts[-1] - 2.0]
        if len(recent) < 2:
            recent = ts[-2:]
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)


def verdict_text(report) -> str:
    """``"waiting"`` (no report yet), else the report's verdict as a person reads it:
    ``"in focus"``, ``"near"``, ``"out of focus"``, ``"motion blur"``, ``"no detail"``."""
    if report is None:
        return "waiting"
    from ..focus.blur import CATEGORY_TEXT
    return CATEGORY_TEXT.get(report.verdict, report.verdict)


def describe_outputs(outputs) -> str:
    """One line naming the outputs (``"none"`` without); never raises."""
    if outputs is None:
        return "none"
    fn = getattr(outputs, "describe", None)
    try:
        d = fn() if callable(fn) else type(outputs).__name__
        return "; ".join(map(str, d)) if isinstance(d, (list, tuple)) else str(d)
    except Exception:  # a status page must not fail on a device's description
        return type(outputs).__name__


def drive_position(drive) -> Optional[float]:
    """The drive's position in steps (rounded to 0.001), or None (no drive, not homed)."""
    if drive is None:
        return None
    try:
        pos = getattr(drive, "position", None)   # a step counter with no known position raises
        if callable(pos):
            pos = pos()
    except PiFocusError:
        return None
    try:
        return round(float(pos), 3) if pos is not None else None
    except (TypeError, ValueError):
        return None


def autofocus_strategies() -> list:
    """The autofocus strategy names this build offers (empty without the autofocus package)."""
    try:
        from .. import autofocus as afmod
    except ImportError:
        return []
    return list(getattr(afmod, "STRATEGIES", ()))


def status_line(svc, report=None) -> str:
    """One line for systemd's ``STATUS=`` (shown by ``systemctl status``); ``report``
    defaults to the pipeline's latest."""
    p = svc.pipeline
    report = report if report is not None else (p.last_report if p else None)
    if p is not None and p.error:
        return f"{p.error}; reopening"
    if report is None:
        return "starting"
    parts = [f"{svc.fps:.1f} fps", verdict_text(report), f"meter {report.meter:.2f}",
             f"sharpness {report.sharpness:.0f}", report.mode]
    if svc.hub is not None and svc.hub.clients:
        parts.append(f"{svc.hub.clients} viewer(s)")
    return ", ".join(parts)


def status_document(svc, autofocus: dict, live=None) -> dict:
    """Everything the page shows, JSON-ready (see ``pifocus/web/API.md``).

    Args:
        svc: the running service.
        autofocus: the autofocus state (``{"state": "idle" | "running" | ...}``).
        live: the controls' :class:`~pifocus.service.live.LiveReports`: during an autofocus
            run the report of its latest frame is newer than the loop's (``report_from``).
    """
    p = svc.pipeline
    report = p.last_report if p else None
    report, origin = live.latest(report) if live is not None else (report, "loop")
    d = {
        "version": __version__,
        "uptime_s": round(time.time() - svc.started, 1),
        "ready": svc.ready,
        "fps": round(svc.fps, 2) if p and not p.error else 0.0,  # no frames while the camera is lost
        "frames": p.frames if p else 0,
        "reconnects": p.reconnects if p else 0,
        "error": p.error if p else None,
        "errors": [e for e in (p.error if p else None, svc.drive_error, svc.analysis_error,
                               svc.reload_error and f"reload failed: {svc.reload_error}") if e],
        "verdict": verdict_text(report),
        "source": svc.source.name if svc.source else None,
        "frame_size": list(svc.frame_size) if svc.frame_size else None,
        "mode": p.analyzer.mode if p else None,
        "exposure_us": getattr(svc, "exposure", (None, None))[0],
        "analogue_gain": getattr(svc, "exposure", (None, None))[1],
        "outputs": describe_outputs(p.outputs) if p else None,
        "outputs_on": bool(p and p.outputs is not None),
        "outputs_available": bool(svc.outputs_enabled and svc.cfg.outputs is not None),
    }
    d.update(_report_fields(report, svc.frame_size))
    d["report_from"] = origin
    drive = svc.drive
    d["drive"] = {"available": drive is not None, "position": drive_position(drive) if drive else None,
                  "busy": svc.drive_lock.locked(), "error": svc.drive_error,
                  "uncertain": bool(getattr(drive, "position_uncertain", False)) if drive else False,
                  "uncertain_reason": (getattr(drive, "uncertain_reason", "") or None) if drive else None}
    d["autofocus"] = dict(autofocus)
    d["strategies"] = autofocus_strategies()
    d["preview"] = svc.hub.stats() if svc.hub else None
    d["clients"] = svc.hub.clients if svc.hub else 0
    return d


def _report_fields(report, frame_size) -> dict:
    """The focus report's part of the status document (placeholders before the first)."""
    if report is None:
        return dict(in_focus=False, verdict_code=None, blur_px=None, sharpness=None, meter=0.0, roi=None, tiles=None)
    r = report.to_dict(tiles=True)
    d = {k: r.get(k) for k in REPORT_FIELDS}
    d["verdict_code"] = r.get("verdict")  # "verdict" itself is the human text (verdict_text)
    tiles = r["tiles"]
    if frame_size:
        # The page draws the grid over the preview, so it wants fractions, not sensor px.
        w, h = frame_size
        x, y, cw, ch = tiles["grid_px"]
        tiles["grid"] = [round(x / w, 5), round(y / h, 5), round(cw / w, 5), round(ch / h, 5)]
    d["tiles"] = tiles
    return d
