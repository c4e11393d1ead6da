"""What the page's readouts follow between and during the loop's own frames.

* :class:`LiveReports` -- an autofocus run (single, or a follow-focus refocus) reads and judges
  its frames itself while the frame loop waits; its analyzer is wrapped so each of those
  reports reaches ``/api/status`` and the preview (the meter relative to the best frame of
  the run), not the report of the last frame before the run.
* :class:`MeterCarry` -- an ROI or analysis-mode change starts a new focusing pass; a bare
  fresh pass would read 100 % on its first frame however soft it is.  The new pass instead
  starts from where the old one stood: its peak is seeded so the current frame reads the
  meter it read before the change (soft stays low), until the new pass shows its own peak:
  sharpness above the seed, a rise and fall (the pass went through focus: its best frame is
  the peak), a rack away and back that makes the change's frame a peak of its own (then
  the ordinary peak hold takes over), or a scene cut.
"""

import dataclasses
import logging
import math
import threading
from typing import Optional

log = logging.getLogger("pifocus.service")

#: A rack away counts when the sharpness falls below this share of the frame at the change.
RACK_AWAY_SHARE = 0.5
#: The new pass has gone through its focus once the sharpness rose above the change's frame
#: and then fell below this share of the best since.
THROUGH_FOCUS_SHARE = 0.8


class _ReportingAnalyzer:
    """The analyzer as an autofocus run sees it: every report also goes to ``on_report``."""

    def __init__(self, analyzer, on_report):
        self._analyzer = analyzer
        self._on_report = on_report

    def analyze(self, frame, track: bool = True):
        """The real analyzer's report of ``frame`` (then handed to ``on_report``)."""
        report = self._analyzer.analyze(frame, track=track)
        self._on_report(frame, report)
        return report

    def __getattr__(self, item):
        return getattr(self._analyzer, item)


class LiveReports:
    """Reports of the frames an autofocus run judges (see the module doc).

    Args:
        offer: ``fn(frame, report)`` -- the preview hub's ``offer`` (or None).
    """

    def __init__(self, offer=None):
        self.offer = offer
        self._lock = threading.Lock()
        self._wrappers = {}
        self._best = 0.0
        self.report = None

    def wrap(self, analyzer):
        """The analyzer to hand to an autofocus run (the same wrapper for the same analyzer,
        so follow focus keeps its state)."""
        w = self._wrappers.get(id(analyzer))
        if w is None or w._analyzer is not analyzer:
            self._wrappers = {id(analyzer): _ReportingAnalyzer(analyzer, self._record)}
            w = self._wrappers[id(analyzer)]
        return w

    def start_run(self) -> None:
        """A new run: its meter starts from its own first frame."""
        with self._lock:
            self._best = 0.0

    def end_run(self) -> None:
        """The run is over: the loop's frames are the news again (also after a reload that
        restarts the source's clock)."""
        with self._lock:
            self.report = None

    def _record(self, frame, report) -> None:
        with self._lock:
            self._best = max(self._best, float(report.sharpness))
            meter = float(report.sharpness) / self._best if self._best > 0 else 0.0
            meter = min(float(report.meter), meter) if report.judgeable else 0.0
            verdict = report.verdict
            by_meter = math.isnan(report.blur_px) or report.near_needs_meter
            if verdict == "near" and by_meter and report.near_meter == report.near_meter \
                    and not meter >= report.near_meter:
                # near by the meter (without a blur head; with one under the classifier rule),
                # which the run's own peak lowered; the blur rule's near is the blur's alone
                verdict = "out_of_focus"
            live = dataclasses.replace(report, meter=meter, verdict=verdict)
            self.report = live
        if self.offer is not None:
            self.offer(frame, live)

    def latest(self, loop_report):
        """The fresher of ``loop_report`` (the frame loop's last) and the last autofocus
        frame's report, with where it came from: ``(report, "loop" | "autofocus")``."""
        live = self.report
        if live is not None and (loop_report is None or live.timestamp_ns > loop_report.timestamp_ns
                                 or (live.timestamp_ns == loop_report.timestamp_ns
                                     and live.frame_index > loop_report.frame_index)):
            return live, "autofocus"
        return loop_report, "loop"


class MeterCarry:
    """Carries the peak-hold meter across an ROI or analysis-mode change (module doc).

    Frame loop thread only: :meth:`arm` from the change's action, :meth:`frame` after every
    analysed frame.
    """

    def __init__(self):
        self._analyzer = None
        self._seed = 0.0
        self._at_change = 0.0
        self._best = 0.0
        self._away = False

    @property
    def active(self) -> bool:
        """True while a seeded peak stands in for the new pass's own."""
        return self._analyzer is not None

    def arm(self, analyzer, before, frame) -> Optional[float]:
        """After a change: judge ``frame`` (the frame the change was made on) with the new
        ROI/mode as the new pass's first frame, and seed its peak so it reads ``before``'s
        meter.  Returns the seeded meter, or None when there is nothing to carry (no report
        before, not judgeable, already at 100 %, no frame).
        """
        self._analyzer = None
        if before is None or frame is None or not before.judgeable:
            return None
        # The peak-hold meter itself (the report's meter may be capped further by the
        # classifier's confidence: seeding from that would hold the LED off after the change).
        held = (float(before.sharpness) / float(before.peak_sharpness) if before.peak_sharpness > 0
                else float(before.meter))
        if not 0 < held < 1:
            return None
        first = analyzer.analyze(frame)
        sharp = float(first.sharpness)
        if not first.judgeable or sharp <= 0:
            return None
        self._analyzer = analyzer
        self._seed = sharp / held
        self._at_change = self._best = sharp
        self._away = False
        analyzer.focus_pass.peak.rebase(self._seed)
        log.debug("meter carried over the change: %.2f (peak seeded at %.4g)", held, self._seed)
        return held

    def frame(self, analyzer, report) -> None:
        """One analysed frame of the loop: release the seed once the new pass has its own peak."""
        if self._analyzer is None:
            return
        if analyzer is not self._analyzer or report.scene_changed:
            self._analyzer = None  # another analyzer, or the pass started again anyway
            return
        sharp = float(report.sharpness)
        self._best = max(self._best, sharp)
        self._away = self._away or sharp < RACK_AWAY_SHARE * self._at_change
        if sharp >= self._seed:
            self._analyzer = None  # the new pass passed the seed: its own peak from here on
        elif self._best > self._at_change and sharp < THROUGH_FOCUS_SHARE * self._best:
            analyzer.focus_pass.peak.rebase(self._best)  # rose and fell: through focus, its best is the peak
            self._analyzer = None
        elif self._away and sharp >= self._at_change:
            # racked away and back: the change's frame is a peak of the new pass after all
            analyzer.focus_pass.peak.rebase(self._best)
            self._analyzer = None
