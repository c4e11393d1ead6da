"""The contact sheet: one self-contained HTML page (opens offline: no script, no network;
thumbnails are inline JPEG data) with, per photo, a thumbnail showing the subject box and
the analyzer's tile heat map, the verdict, the reason and the measures; bursts are framed
together and their best photo starred.

* :func:`annotate` -- a thumbnail with subject box and heat map drawn in (BGR array).
* :func:`render_html` -- the page for a list of results.
* :func:`write_report` -- render + atomic write.
"""

import base64
import html
import math
import os
from typing import Dict, List, Optional

import numpy as np

from ..storage import atomic_write

#: Border colours (CSS) per verdict.
COLOURS = {"keep": "#2e9e44", "maybe": "#d9a400", "reject": "#c62828"}
#: Heat map opacity.
HEAT_ALPHA = 0.35


def annotate(thumb_bgr: np.ndarray, result) -> np.ndarray:
    """``thumb_bgr`` with the analyzer's judged tiles tinted (green = in focus, red = soft)
    and the subject box outlined (BGR colour of the verdict)."""
    import cv2
    img = thumb_bgr.copy()
    s = img.shape[1] / float(result.width)
    t = result.tiles or {}
    overlay = img.copy()
    if t.get("grid_px") and t.get("p"):
        x0, y0, cw, ch = t["grid_px"]
        for r, row in enumerate(t["p"]):
            for c, p in enumerate(row):  # drawing only: a few dozen tiles
                if p is None or not t["textured"][r][c]:
                    continue
                a = (int((x0 + c * cw) * s), int((y0 + r * ch) * s))
                b = (int((x0 + (c + 1) * cw) * s) - 1, int((y0 + (r + 1) * ch) * s) - 1)
                cv2.rectangle(overlay, a, b, (0, int(255 * p), int(255 * (1 - p))), -1)
    img = cv2.addWeighted(overlay, HEAT_ALPHA, img, 1 - HEAT_ALPHA, 0)
    x, y, w, h = result.subject.box_px
    hexcol = COLOURS.get(result.verdict, "#ffffff").lstrip("#")
    bgr = tuple(int(hexcol[i:i + 2], 16) for i in (4, 2, 0))
    cv2.rectangle(img, (int(x * s), int(y * s)), (int((x + w) * s), int((y + h) * s)), bgr, 2)
    return img


def _data_uri(img_bgr: Optional[np.ndarray]) -> str:
    if img_bgr is None:
        return ""
    import cv2
    ok, buf = cv2.imencode(".jpg", img_bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii") if ok else ""


def _fmt(v, unit="", nd=1):
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{nd}f}{unit}"


def _motion(r) -> str:
    """The motion row: the streak's length and direction when one was measured; a flag of
    the model's motion head alone has no length (it said "yes n/a" before)."""
    if not r.motion_blur:
        return "no"
    if isinstance(r.motion_px, float) and math.isfinite(r.motion_px):
        angle = (f" at {r.motion_angle_deg:.0f}&deg;" if isinstance(r.motion_angle_deg, float)
                 and math.isfinite(r.motion_angle_deg) else "")
        return f"yes, {r.motion_px:.1f} px streak{angle}"
    return "yes (the model's motion head; no streak length measured)"


def _subject(s) -> str:
    """The subject row: kind, box and, for a burst's shared region, the photo it came from."""
    text = f"{s.kind} {list(s.box_px)}"
    if s.shared_from:
        text += f" (the burst's region, found on {os.path.basename(s.shared_from)})"
    return html.escape(text)


_CSS = """body{font:14px sans-serif;background:#222;color:#eee;margin:1em}
.grp{display:flex;flex-wrap:wrap;gap:8px;padding:6px;margin:6px 0;border:1px dashed #555}
.card{width:330px;background:#333;border:4px solid;padding:4px}
.card img{width:100%;display:block}.v{font-weight:bold;text-transform:uppercase}
.r{color:#ccc;font-size:12px}.best{color:#ffd54f}table{font-size:12px}"""


def render_html(results: List, thumbs: Dict[str, np.ndarray], summary: dict) -> str:
    """The contact-sheet page.

    Args:
        results: :class:`~pifocus.cull.CullResult` list (any order: shown by group, then time).
        thumbs: annotated thumbnails by photo path (missing ones show no image).
        summary: counts for the header (``keep``, ``maybe``, ``reject``, ``unreadable`` ...).
    """
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>pifocus cull</title>",
             f"<style>{_CSS}</style></head><body><h1>pifocus cull</h1><p>",
             html.escape(", ".join(f"{k}: {v}" for k, v in summary.items() if not isinstance(v, list))),
             "</p>"]
    if summary.get("unreadable_files"):
        parts.append("<p>Unreadable: " + html.escape(", ".join(summary["unreadable_files"])) + "</p>")
    by_group: Dict[int, List] = {}
    for r in sorted(results, key=lambda r: (r.group, r.time_s if math.isfinite(r.time_s) else 0, r.path)):
        by_group.setdefault(r.group, []).append(r)
    for g, rs in by_group.items():
        parts.append(f"<div class='grp' title='group {g}'>")
        for r in rs:
            star = " <span class='best'>&#9733; best of burst</span>" if r.best else ""
            uri = _data_uri(thumbs.get(r.path))
            img = f"<img src='{uri}' alt='{html.escape(r.path)}'>" if uri else ""
            parts.append(
                f"<div class='card' style='border-color:{COLOURS.get(r.verdict, '#888')}'>{img}"
                f"<div><span class='v'>{r.verdict}</span> {'&#9733;' * r.rating}{star}</div>"
                f"<div>{html.escape(r.path)}</div><div class='r'>{html.escape(r.reason)}</div>"
                "<table>"
                f"<tr><td>subject</td><td>{_subject(r.subject)}</td></tr>"
                f"<tr><td>blur</td><td>{_fmt(r.blur_px, ' px')} ({r.blur_source})</td></tr>"
                f"<tr><td>motion</td><td>{_motion(r)}</td></tr>"
                f"<tr><td>CNN p</td><td>{_fmt(r.p_in_focus, '', 2)}</td></tr>"
                f"<tr><td>noise</td><td>{_fmt(r.noise_sigma_dn, ' DN')}, SNR {_fmt(r.snr_db, ' dB')}</td></tr>"
                f"<tr><td>exposure</td><td>{_fmt(r.ev_offset, ' EV', 2)}, clip {_fmt(r.clip_high_pct, ' %')}"
                f" / {_fmt(r.clip_low_pct, ' %')}</td></tr></table></div>")
        parts.append("</div>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(path: str, results: List, thumbs: Dict[str, np.ndarray], summary: dict) -> str:
    """Write the contact sheet to ``path`` atomically; returns the path.

    Raises:
        StorageError: the file cannot be written.
    """
    atomic_write(path, render_html(results, thumbs, summary).encode("utf-8"), what="cull report")
    return path
