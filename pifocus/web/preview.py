"""Encode once, fan out: the newest frame becomes one JPEG that every client shares.

The frame loop calls :meth:`PreviewHub.offer` for every frame.  It only copies the luma into a
one-frame slot (replacing a frame the encoder has not taken yet: slow encoding drops frames,
it never queues them) and returns.  One encoder thread downscales the slot's frame to the
preview width, draws focus peaking and encodes a JPEG; every streaming client waits on a
condition variable for the next JPEG and sends the same bytes.  With no client connected
nothing is encoded.
"""

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, Optional, Tuple

import numpy as np

from ..focus.exposure import CLIP_HIGH_DN
from . import PEAKING_COLOURS, WebParams
from . import magnifier as mag

log = logging.getLogger(__name__)


@dataclass
class PreviewFrame:
    """One encoded preview image.

    Attributes:
        seq: increasing number of the encoded image (1, 2, ...).
        jpeg: the JPEG bytes.
        width, height: preview size in pixels.
        frame_index: index of the source frame.
        timestamp_ns: the source frame's capture time (``time.monotonic_ns`` clock for live
            and realtime-simulated sources).
        encoded_ns: ``time.monotonic_ns()`` when encoding finished.
        encode_ms: time spent downscaling, peaking and encoding.
    """

    seq: int
    jpeg: bytes
    width: int
    height: int
    frame_index: int
    timestamp_ns: int
    encoded_ns: int
    encode_ms: float
    extra: dict = field(default_factory=dict)


def peaking_mask(small: np.ndarray, threshold: float, noise_sigma_dn: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Sharp edges to colour on the downscaled luma.

    An edge is *sharp* where the |Laplacian| (4-neighbour kernel) is a large share of the
    local contrast (max - min over 5x5): a step edge blurred over ``b`` pixels gives a ratio of
    about ``1/b``, whatever its contrast, so a hard black/white edge that is slightly soft is
    not painted while a faint but crisp one is.

    Args:
        small: the downscaled 2-D ``uint8`` luma.
        threshold: the ratio above which a pixel is painted (0.45: edges spanning about two
            preview pixels or less).
        noise_sigma_dn: sensor noise of the full frame (DN RMS): contrast below eight times the
            noise left after downscaling by ``scale`` is ignored, so grain is not painted.
        scale: full-frame width / preview width (>= 1).

    Returns:
        bool array of ``small``'s shape.
    """
    return _peaking_mask8(small, threshold, noise_sigma_dn, scale) > 0


def _peaking_mask8(small: np.ndarray, threshold: float, noise_sigma_dn: float = 0.0,
                   scale: float = 1.0) -> np.ndarray:
    """:func:`peaking_mask` as a 0/255 ``uint8`` mask, OpenCV calls only (they release the
    GIL, so the encoder thread does not hold up the frame loop)."""
    import cv2

    lap = cv2.convertScaleAbs(cv2.Laplacian(small, cv2.CV_16S, ksize=1))
    k = np.ones((5, 5), np.uint8)
    contrast = cv2.subtract(cv2.dilate(small, k), cv2.erode(small, k))
    sigma = float(noise_sigma_dn) / max(scale, 1.0)  # INTER_AREA averages the noise down
    # ... and the Laplacian itself must stand clear of noise (3 std of a 4-neighbour
    # Laplacian of white noise, 4.5 sigma each).
    needed = cv2.max(cv2.convertScaleAbs(contrast, alpha=float(threshold)), min(254.0, 13.5 * sigma))
    min_contrast = max(12.0, 8.0 * sigma)
    return cv2.bitwise_and(cv2.compare(lap, needed, cv2.CMP_GT),
                           cv2.compare(contrast, min_contrast, cv2.CMP_GT))


def _lower_priority(nice: int) -> None:
    """Make the calling thread yield the CPU to the frame loop (Linux: nice is per thread):
    ``nice`` above the process's own (the main thread's); idempotent, so a keep-alive HTTP
    thread that serves many magnifier requests is lowered once, not step by step to 19."""
    if nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        target = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + nice)
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
    except (AttributeError, OSError) as e:  # not Linux, or not allowed: fine either way
        log.debug("cannot lower the preview encoder's priority: %s", e)


class PreviewHub:
    """The one-slot frame hand-over, the encoder thread and the client fan-out.

    Args:
        params: :class:`~pifocus.web.WebParams` (preview width, JPEG quality, peaking, ...).

    Attributes:
        peaking: draw focus peaking (switchable at run time).
        peaking_colour: name of the peaking colour (:data:`~pifocus.web.PEAKING_COLOURS`).
        zebra: stripe clipped highlights (at or above ``CLIP_HIGH_DN``) on the preview.
        offered, encoded, dropped: frame counters (dropped = replaced before encoding).
    """

    def __init__(self, params: WebParams = WebParams()):
        self.params = params
        self.peaking = params.peaking
        self.peaking_colour = params.peaking_colour
        self.zebra = params.zebra
        self._full = None  # (luma, index, timestamp_ns, noise, lens_position, monotonic s): last frame encoded
        self._roi = None   # the subject region of the newest offered frame (normalized x, y, w, h)
        self.offered = self.encoded = self.dropped = 0
        self._clients = 0
        self._want_until = 0.0
        self._next_offer_ns = 0.0
        self._in = threading.Condition()
        self._slot: Optional[Tuple[np.ndarray, int, int, float, float]] = None
        self._out = threading.Condition()
        self._latest: Optional[PreviewFrame] = None
        self._closed = False
        self._encode_ms = 0.0
        self._thread: Optional[threading.Thread] = None
        self._solid = None
        self._solid_colour = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "PreviewHub":
        """Start the encoder thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._encoder, name="pifocus-preview", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 1.0) -> None:
        """Stop the encoder and wake every waiting client (their streams end)."""
        self._closed = True
        with self._in:
            self._in.notify_all()
        with self._out:
            self._out.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    # -- producer side (frame loop) ----------------------------------------------------------
    @property
    def wanted(self) -> bool:
        """True when someone will look at the next preview (a stream or a snapshot request)."""
        return self._clients > 0 or time.monotonic() < self._want_until

    def offer(self, frame, report=None) -> bool:
        """Hand the newest frame to the encoder; never waits for encoding.

        Called from the frame loop.  Does nothing (returns False) when nobody watches or
        the ``max_fps`` budget says skip this frame.
        """
        if self._closed or not self.wanted:
            return False
        now_ns = time.monotonic_ns()
        if self.params.max_fps > 0:
            if now_ns < self._next_offer_ns:
                return False
            period = 1e9 / self.params.max_fps  # a budget, not a divisor of the camera rate
            self._next_offer_ns = max(self._next_offer_ns, now_ns - period) + period
        luma = np.array(frame.luma, copy=True)  # may be a view into a camera buffer
        noise = float(getattr(report, "noise_sigma_dn", 0.0) or 0.0) if report is not None else 0.0
        if noise != noise:  # NaN
            noise = 0.0
        with self._in:
            if self._slot is not None:
                self.dropped += 1
            self._slot = (luma, int(frame.index), int(frame.timestamp_ns), noise, frame.lens_position)
            self._roi = getattr(report, "roi", None) if report is not None else None
            self.offered += 1
            self._in.notify()
        return True

    # -- encoder -------------------------------------------------------------------------------
    def peaking_mask_fn(self, noise_sigma_dn: float, scale: float = 1.0):
        """``fn(luma) -> 0/255 mask``: the peaking rule with this hub's threshold and the
        frame's noise, for luma at ``scale`` sensor pixels per pixel."""
        thr = self.params.peaking_threshold
        return lambda a: _peaking_mask8(a, thr, noise_sigma_dn, scale)

    def render(self, luma: np.ndarray, noise_sigma_dn: float = 0.0,
               roi: Optional[Tuple[float, float, float, float]] = None) -> Tuple[np.ndarray, float]:
        """Downscale ``luma`` to the preview width, draw peaking and the zebra; returns
        ``(bgr, scale)``.

        With ``peaking_resolution = "sensor"`` the peaking inside the subject region ``roi``
        (normalized; None = the whole frame) is found at sensor resolution (see
        :mod:`.magnifier`): that is where focus is judged, and it bounds the cost to the ROI's
        pixels; outside it, on the preview."""
        import cv2

        h, w = luma.shape
        pw = min(self.params.preview_width, w)
        ph = max(1, int(round(h * pw / w)))
        small = cv2.resize(luma, (pw, ph), interpolation=cv2.INTER_AREA) if pw != w else luma
        bgr = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        scale = w / pw
        if self.zebra:
            mag.paint(bgr, mag.zebra_mask(small, CLIP_HIGH_DN), (0, 0, 0))
        if self.peaking:
            mask = _peaking_mask8(small, self.params.peaking_threshold, noise_sigma_dn, scale)
            if self.params.peaking_resolution == "sensor" and scale > 1:
                self._sensor_peaking(luma, mask, noise_sigma_dn, roi or (0.0, 0.0, 1.0, 1.0))
            colour = PEAKING_COLOURS[self.peaking_colour]
            if self._solid is None or self._solid.shape != bgr.shape or self._solid_colour != colour:
                self._solid = np.empty_like(bgr)
                self._solid[:] = colour
                self._solid_colour = colour
            cv2.copyTo(self._solid, mask, bgr)
        return bgr, scale

    def _sensor_peaking(self, luma: np.ndarray, mask: np.ndarray, noise_sigma_dn: float, roi) -> None:
        """Replace ``mask`` (preview size) inside ``roi`` with peaking found at sensor
        resolution on that part of ``luma`` (reduced to ``peaking_max_px`` wide first when
        the frame is wider)."""
        import cv2

        h, w = luma.shape
        ph, pw = mask.shape
        x, y, rw, rh = roi
        px0, py0 = max(0, int(x * pw)), max(0, int(y * ph))
        px1, py1 = min(pw, int(math.ceil((x + rw) * pw))), min(ph, int(math.ceil((y + rh) * ph)))
        if px1 - px0 < 2 or py1 - py0 < 2:
            return
        sx, sy = w / pw, h / ph
        crop = luma[int(round(py0 * sy)):int(round(py1 * sy)), int(round(px0 * sx)):int(round(px1 * sx))]
        s0 = 1.0
        if w > self.params.peaking_max_px:  # bound the cost on a 12 MP frame
            s0 = w / self.params.peaking_max_px
            crop = cv2.resize(crop, (max(1, int(round(crop.shape[1] / s0))), max(1, int(round(crop.shape[0] / s0)))),
                              interpolation=cv2.INTER_AREA)
        mask[py0:py1, px0:px1] = mag.sensor_peaking(np.ascontiguousarray(crop), (px1 - px0, py1 - py0),
                                                    self.peaking_mask_fn(noise_sigma_dn, s0),
                                                    self.params.peaking_min_share)

    def zoom(self, zp: "mag.ZoomParams", timeout: float = 2.0) -> Optional[Tuple[bytes, dict]]:
        """The magnifier JPEG of the newest full-resolution frame (:func:`.magnifier.render_zoom`,
        peaking at sensor resolution when peaking is on); ``(jpeg, headers)`` or None when
        no frame comes within ``timeout`` seconds.  Runs in the caller's (HTTP) thread, at the
        encoder's lower priority: a photographer holding the magnifier must not slow the loop."""
        import cv2

        _lower_priority(self.params.encoder_nice)

        full = self._full
        if full is None or time.monotonic() - full[5] > 0.5:
            self.snapshot(timeout)  # asks the loop for frames; the encoder keeps the full luma
            full = self._full
        if full is None:
            return None
        luma, index, ts, noise, lens, _ = full
        fn = self.peaking_mask_fn(noise) if self.peaking else None
        bgr, (x0, y0, w, h) = mag.render_zoom(luma, zp, fn, PEAKING_COLOURS[self.peaking_colour])
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            return None
        return buf.tobytes(), {"X-Frame-Index": str(index), "X-Timestamp-Ns": str(ts),
                               "X-Zoom-Window": f"{x0},{y0},{w},{h}", "X-Zoom-Scale": str(zp.scale),
                               "X-Lens-Position": "" if lens is None else f"{float(lens):g}"}

    def _encoder(self) -> None:
        import cv2

        _lower_priority(self.params.encoder_nice)
        seq = 0
        while not self._closed:
            with self._in:
                while self._slot is None and not self._closed:
                    self._in.wait(0.5)
                if self._closed:
                    break
                luma, index, ts, noise, lens = self._slot
                self._slot = None
            self._full = (luma, index, ts, noise, lens, time.monotonic())
            t0 = time.perf_counter()
            try:
                bgr, _ = self.render(luma, noise, self._roi)
                ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(self.params.jpeg_quality)])
                if not ok:
                    raise RuntimeError("cv2.imencode returned False")
            except Exception:  # a bad frame must not kill the preview
                log.exception("preview encoding failed")
                continue
            ms = (time.perf_counter() - t0) * 1e3
            self._encode_ms = ms if self._encode_ms == 0 else 0.9 * self._encode_ms + 0.1 * ms
            seq += 1
            pf = PreviewFrame(seq=seq, jpeg=buf.tobytes(), width=bgr.shape[1], height=bgr.shape[0],
                              frame_index=index, timestamp_ns=ts, encoded_ns=time.monotonic_ns(), encode_ms=ms)
            with self._out:
                self._latest = pf
                self.encoded += 1
                self._out.notify_all()

    # -- consumer side (HTTP threads) ---------------------------------------------------------
    @property
    def clients(self) -> int:
        """Streams currently connected."""
        return self._clients

    def try_join(self) -> bool:
        """Register a streaming client; False when ``max_clients`` are already connected."""
        with self._out:
            if self._clients >= self.params.max_clients:
                return False
            self._clients += 1
            return True

    def leave(self) -> None:
        """Unregister a streaming client (pair of a successful :meth:`try_join`)."""
        with self._out:
            self._clients = max(0, self._clients - 1)

    def latest(self) -> Optional[PreviewFrame]:
        """The newest encoded preview, or None."""
        return self._latest

    def wait_next(self, after_seq: int, timeout: float) -> Optional[PreviewFrame]:
        """Block until a preview newer than ``after_seq`` exists; None on timeout or close."""
        deadline = time.monotonic() + timeout
        with self._out:
            while not self._closed:
                pf = self._latest
                if pf is not None and pf.seq > after_seq:
                    return pf
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._out.wait(min(left, 0.5))
        return None

    def snapshot(self, timeout: float = 2.0) -> Optional[PreviewFrame]:
        """A fresh preview for a one-off request: asks the loop for frames for a moment."""
        self._want_until = time.monotonic() + timeout + 1.0
        last = self._latest
        return self.wait_next(last.seq if last is not None else 0, timeout) or last

    def stream(self, timeout: float = 5.0) -> Iterator[PreviewFrame]:
        """Yield every new preview (skipping any the client was too slow for) until the hub
        closes; when no new frame comes for ``timeout`` seconds the last one is repeated."""
        seq = 0
        while not self._closed:
            pf = self.wait_next(seq, timeout)
            if pf is None:
                if self._closed:
                    return
                pf = self._latest  # stalled camera: repeat the last image (keeps the
                if pf is None:      # connection alive and finds clients that went away)
                    continue
            seq = pf.seq
            yield pf

    def stats(self) -> dict:
        """Counters for ``/api/status``."""
        pf = self._latest
        return {"clients": self._clients, "encoded": self.encoded, "dropped": self.dropped,
                "encode_ms": round(self._encode_ms, 2), "peaking": self.peaking,
                "peaking_colour": self.peaking_colour, "peaking_resolution": self.params.peaking_resolution,
                "zebra": self.zebra,
                "width": pf.width if pf else None, "height": pf.height if pf else None,
                "seq": pf.seq if pf else 0}
