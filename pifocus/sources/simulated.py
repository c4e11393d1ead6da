"""A simulated lens over a scene: the source the demo, the tests and the AF bench run on.

The scene is a procedural focus chart (Siemens star, text, resolution bars, fine texture,
flat patches) or any image.  Each frame is the scene blurred by a disk (pillbox)
point-spread function whose radius follows the lens position, scaled by exposure, with
signal-dependent sensor noise (shot + read noise, growing with analogue gain), quantized to
8-bit luma.  Everything is deterministic from ``seed``.

With nobody driving the lens, the source performs a *focus pull*: the lens racks from one
end of its range to the other and back (a triangle wave of ``pull_frames`` frames), so a
demo shows the verdict changing.  A focus drive (``drive/simulated.py``) sets
:attr:`SimulatedSource.lens_position` instead, which stops the automatic pull.
"""

import logging
import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..exc import ConfigError, SourceError
from ..frames import Frame
from . import FrameSource
from .files import decode_color_file, decode_image_file
from .imagehdr import check_max_pixels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimParams:
    """Validated parameters of the simulated camera and lens.

    Attributes:
        width, height: frame size in pixels (default: the HQ Camera's 2028x1520 mode).
        focus_position: lens position (steps) at which the scene is sharp.
        range_steps: the lens travels over ``0 .. range_steps``.
        blur_px_per_step: circle-of-confusion radius gained per step away from focus, px.
        lens_blur_px: residual blur radius of the lens at best focus, px.
        max_blur_px: cap on the blur radius, px.
        analogue_gain: sensor gain; 1.0 is base ISO, 16.0 roughly ISO 1600 on the IMX477.
        exposure: exposure relative to a correct one (0.5 = one stop under).
        full_well_e: electrons for a full-scale (255) pixel at gain 1.
        read_noise_e: read noise in electrons RMS.
        pull_frames: frames in one near->far->near focus pull when no drive moves the lens.
        fps: nominal frame rate, for timestamps (and pacing when ``realtime``).
        realtime: sleep to keep ``fps`` like a camera would.
        seed: seed for the scene layout and the noise.
        hold_position: keep the lens at this position (steps) instead of the automatic
            focus pull, e.g. at ``focus_position`` for a worst-case benchmark where every
            textured tile is sharp.
    """

    width: int = 2028
    height: int = 1520
    focus_position: float = 500.0
    range_steps: int = 1000
    blur_px_per_step: float = 0.04
    lens_blur_px: float = 0.6
    max_blur_px: float = 24.0
    analogue_gain: float = 1.0
    exposure: float = 1.0
    full_well_e: float = 10000.0
    read_noise_e: float = 3.0
    pull_frames: int = 120
    fps: float = 30.0
    realtime: bool = False
    seed: int = 0
    hold_position: Optional[float] = None

    def __post_init__(self):
        for f in ("width", "height", "focus_position", "range_steps", "blur_px_per_step", "lens_blur_px",
                  "max_blur_px", "analogue_gain", "exposure", "full_well_e", "read_noise_e", "pull_frames",
                  "fps", "seed", "hold_position"):
            v = getattr(self, f)
            if v is None and f == "hold_position":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"sim source: {f} = {v!r} is invalid; allowed: a finite number "
                                  f"(default {getattr(type(self), f)!r})")
        if not isinstance(self.realtime, bool):
            raise ConfigError(f"sim source: realtime = {self.realtime!r} is invalid; allowed: true or false")

        def check(name, ok, allowed):
            if not ok:
                raise ConfigError(f"sim source: {name} = {getattr(self, name)!r} is invalid; "
                                  f"allowed: {allowed}")
        check("width", 64 <= int(self.width) <= 8192, "64..8192 pixels")
        check("height", 64 <= int(self.height) <= 8192, "64..8192 pixels")
        check("range_steps", self.range_steps >= 1, ">= 1 step")
        check("focus_position", 0 <= self.focus_position <= self.range_steps,
              f"0..range_steps ({self.range_steps})")
        check("blur_px_per_step", self.blur_px_per_step > 0, "> 0")
        check("lens_blur_px", 0 <= self.lens_blur_px <= 5, "0..5 px")
        check("max_blur_px", 1 <= self.max_blur_px <= 200, "1..200 px")
        check("analogue_gain", 1.0 <= self.analogue_gain <= 64.0, "1..64")
        check("exposure", 0.01 <= self.exposure <= 16.0, "0.01..16 (1 = correct exposure)")
        check("full_well_e", self.full_well_e > 0, "> 0 electrons")
        check("read_noise_e", self.read_noise_e >= 0, ">= 0 electrons")
        check("pull_frames", self.pull_frames >= 2, ">= 2 frames")
        check("fps", 0 < self.fps <= 1000, "0..1000")
        check("hold_position", self.hold_position is None or 0 <= self.hold_position <= self.range_steps,
              f"0..range_steps ({self.range_steps})")


# ---------------------------------------------------------------------------------------
# Pure functions: the scene, the PSF, the noise
# ---------------------------------------------------------------------------------------

def focus_chart(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Render the procedural focus chart as float32 luminance in 0..1, shape (height, width).

    Centre: a 72-spoke Siemens star.  Around it: text, resolution bars, patches of fine
    random texture and flat grey patches (which a focus measure must call uninformative).
    ``seed`` moves the texture and text content, not the layout.
    """
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((height, width), 0.45, np.float32)
    s = min(width, height)
    cx, cy = width // 2, height // 2

    # Siemens star: spokes alternate black/white by angle.
    r_star = int(s * 0.22)
    yy, xx = np.mgrid[-r_star:r_star, -r_star:r_star].astype(np.float32)
    ang = np.arctan2(yy, xx)
    rad = np.hypot(xx, yy)
    star = np.where(np.sin(36 * ang) > 0, 0.9, 0.08).astype(np.float32)
    inside = rad < r_star
    patch = img[cy - r_star:cy + r_star, cx - r_star:cx + r_star]
    patch[inside] = star[inside]

    # Fine texture patches: band-limited random noise (like foliage, fabric, skin pores).
    tex_size = int(s * 0.16)
    for (fx, fy) in ((0.12, 0.12), (0.88, 0.12), (0.12, 0.88), (0.88, 0.88), (0.5, 0.12), (0.5, 0.88)):
        noise = rng.random((tex_size, tex_size), dtype=np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), 0.8)
        noise = (noise - noise.mean()) / (noise.std() + 1e-6)
        tex = np.clip(0.5 + 0.22 * noise, 0.02, 0.98)
        x0 = int(fx * width - tex_size / 2)
        y0 = int(fy * height - tex_size / 2)
        x0, y0 = max(0, min(width - tex_size, x0)), max(0, min(height - tex_size, y0))
        img[y0:y0 + tex_size, x0:x0 + tex_size] = tex

    # Resolution bars: groups of 1-, 2-, 3- and 4-pixel line pairs.
    bar_h = int(s * 0.12)
    x = int(width * 0.2)
    y0 = int(height * 0.5 - bar_h / 2)
    for period in (2, 4, 6, 8):
        for k in range(8):
            x_on = x + k * period
            img[y0:y0 + bar_h, x_on:x_on + period // 2] = 0.9
            img[y0:y0 + bar_h, x_on + period // 2:x_on + period] = 0.1
        x += 8 * period + period * 3

    # Text: random letters in a few sizes, as a photographer's test chart would have.
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    scale_base = s / 900.0
    tx0 = int(width * 0.66)
    ink = np.zeros((height, width), np.uint8)  # putText draws on 8-bit images only
    for row, scale in enumerate((0.5, 0.8, 1.2, 1.8)):
        text = "".join(rng.choice(list(letters), 8))
        ty = int(height * 0.36 + row * height * 0.09)
        cv2.putText(ink, text, (tx0, ty), cv2.FONT_HERSHEY_SIMPLEX, scale * scale_base,
                    255, max(1, int(round(scale * scale_base * 2))), cv2.LINE_AA)
    inked = ink > 0
    alpha = ink[inked].astype(np.float32) / 255.0
    img[inked] += alpha * (0.05 - img[inked])

    # Flat patches (no texture at all): sky, a wall.
    fw, fh = int(width * 0.14), int(height * 0.14)
    img[int(height * 0.30):int(height * 0.30) + fh, int(width * 0.04):int(width * 0.04) + fw] = 0.75
    img[int(height * 0.62):int(height * 0.62) + fh, int(width * 0.04):int(width * 0.04) + fw] = 0.25
    return img


def disk_kernel(radius_px: float, supersample: int = 8) -> np.ndarray:
    """A normalized disk (pillbox) PSF of the given radius in pixels, anti-aliased.

    A radius below 0.5 px gives (nearly) the identity kernel.  Returns float32, odd size.
    """
    radius_px = float(max(radius_px, 0.0))
    half = int(math.ceil(radius_px))
    size = 2 * half + 1
    ss = supersample
    coords = (np.arange(size * ss, dtype=np.float32) + 0.5) / ss - half - 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    inside = (xx * xx + yy * yy) <= max(radius_px, 0.5) ** 2
    k = inside.reshape(size, ss, size, ss).mean(axis=(1, 3)).astype(np.float32)
    return k / k.sum()


def defocus(image: np.ndarray, radius_px: float, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Blur a float32 image with a disk PSF of ``radius_px``.

    Large radii are done at reduced resolution (a large blur holds no detail that the
    reduction would lose), so a frame costs about the same at any defocus.  ``out`` (same
    shape, float32) is reused when given, so a live loop allocates nothing per frame.
    """
    import cv2

    if radius_px < 0.25:
        if out is None:
            return image.copy()
        np.copyto(out, image)
        return out
    factor = max(1, int(radius_px // 3))
    if factor == 1:
        return cv2.filter2D(image, -1, disk_kernel(radius_px), dst=out, borderType=cv2.BORDER_REFLECT)
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    small = cv2.filter2D(small, -1, disk_kernel(radius_px / factor), borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)


def sensor(luminance: np.ndarray, rng: np.random.Generator, *, exposure: float = 1.0,
           analogue_gain: float = 1.0, full_well_e: float = 10000.0,
           read_noise_e: float = 3.0, out: Optional[np.ndarray] = None,
           strip_rows: int = 128) -> np.ndarray:
    """Turn scene luminance (float32, 0..1) into noisy 8-bit luma.

    Signal in electrons is ``luminance * exposure * full_well_e / analogue_gain`` (more gain
    means fewer photons for the same output level); shot noise is Poisson (Gaussian
    approximation), read noise Gaussian; the result is scaled back so that a correctly
    exposed white is 255, then clipped and rounded.

    Works in strips of ``strip_rows`` rows, so its scratch memory is a strip, not a frame
    (this runs every frame on a Pi with 1 GB).  ``luminance`` is left untouched; ``out``
    (uint8) is the result buffer to reuse, if given.
    """
    electrons_full_scale = full_well_e / analogue_gain
    gain = np.float32(exposure * electrons_full_scale)
    read_var = np.float32(read_noise_e ** 2)
    to_dn = np.float32(255.0 / electrons_full_scale)
    if out is None:
        out = np.empty(luminance.shape, np.uint8)
    for y0 in range(0, luminance.shape[0], strip_rows):
        signal = luminance[y0:y0 + strip_rows] * gain
        # noise_e = sqrt(max(signal_e, 0) + read_noise^2) * N(0, 1)
        noise = np.maximum(signal, 0)
        noise += read_var
        np.sqrt(noise, out=noise)
        noise *= rng.standard_normal(noise.shape, dtype=np.float32)
        signal += noise
        signal *= to_dn
        signal += np.float32(0.5)
        np.clip(signal, 0, 255, out=signal)
        np.copyto(out[y0:y0 + strip_rows], signal, casting="unsafe")
    return out


def _release_scratch() -> None:
    """Hand the chart-building scratch memory back to the OS (glibc keeps freed heap
    otherwise, and on a 1 GB Pi that matters); a no-op elsewhere."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def blur_radius_px(position: float, params: SimParams) -> float:
    """Circle-of-confusion radius (px) at a lens position for these lens parameters."""
    r = abs(position - params.focus_position) * params.blur_px_per_step
    return float(min(math.hypot(r, params.lens_blur_px), params.max_blur_px))


def pull_position(frame_index: int, params: SimParams) -> float:
    """Lens position of the automatic focus pull at a frame index (triangle wave)."""
    half = params.pull_frames / 2.0
    phase = (frame_index % params.pull_frames) / half  # 0..2
    frac = phase if phase <= 1.0 else 2.0 - phase
    return frac * params.range_steps


class SimulatedSource(FrameSource):
    """Frames from a simulated lens over a focus chart or an image (``sim[:IMAGE]``).

    Args:
        image: path of an image to use as the scene instead of the procedural chart; its
            size becomes the frame size unless ``width``/``height`` are given.
        max_pixels: refuse a scene image whose header announces more pixels than this
            (``[source] max_pixels``; default 50 MP) before decoding it.
        **params: fields of :class:`SimParams`.

    Attributes:
        lens_position: where the lens is (steps).  Setting it (as the simulated focus drive
            does) stops the automatic focus pull.
    """

    finite = False

    def __init__(self, image: Optional[str] = None, max_pixels: Optional[int] = None, **params):
        super().__init__()
        self.image_path = image
        self.max_pixels = check_max_pixels(max_pixels)
        self._user_size = "width" in params or "height" in params
        known = sorted(SimParams.__dataclass_fields__)
        for key in params:
            if key not in known:
                import difflib
                close = difflib.get_close_matches(key, known, n=1)
                raise ConfigError(f"sim source: unknown option {key!r}"
                                  + (f"; did you mean {close[0]!r}?" if close else "")
                                  + f" (options: {', '.join(known)})")
        self.params = SimParams(**params)
        self.name = f"sim:{image}" if image else "sim"
        self._scene: Optional[np.ndarray] = None
        self._scene_bgr: Optional[np.ndarray] = None  # uint8 colour scene (colour images only)
        self._blur: Optional[np.ndarray] = None
        self._rng = np.random.default_rng(self.params.seed)
        # None = automatic focus pull
        self._lens_position: Optional[float] = self.params.hold_position
        self._next_time = 0.0

    @property
    def lens_position(self) -> float:
        """Lens position (steps) of the next frame."""
        if self._lens_position is None:
            return pull_position(self._index, self.params)
        return self._lens_position

    @lens_position.setter
    def lens_position(self, value: float) -> None:
        self._lens_position = float(min(max(value, 0.0), self.params.range_steps))

    @property
    def scene(self) -> np.ndarray:
        """The sharp scene as float32 luminance 0..1 (rendered on first use)."""
        if self._scene is None:
            self._scene = self._make_scene()
        return self._scene

    def _make_scene(self) -> np.ndarray:
        import cv2

        p = self.params
        if self.image_path is None:
            return focus_chart(p.width, p.height, p.seed)
        img, reason = decode_image_file(self.image_path, max_pixels=self.max_pixels)
        if img is None:
            raise SourceError(f"sim source: cannot use scene image {self.image_path!r}: {reason}; "
                              "give a readable PNG/JPEG/BMP file")
        if self._user_size and (img.shape[1], img.shape[0]) != (p.width, p.height):
            img = cv2.resize(img, (p.width, p.height), interpolation=cv2.INTER_AREA)
        bgr, _ = decode_color_file(self.image_path, size=(img.shape[1], img.shape[0]), max_pixels=self.max_pixels)
        self._scene_bgr = bgr  # None for a grey image: its stills stay grey
        return img.astype(np.float32) / 255.0

    @property
    def still_kinds(self) -> tuple:
        """``("color",)`` when the scene is a colour image, else ``()`` (the chart is grey)."""
        _ = self.scene
        return ("color",) if self._scene_bgr is not None else ()

    def render_color(self, position: float) -> np.ndarray:
        """The colour frame (B, G, R uint8) the camera would give at a lens position: each
        channel blurred and exposed like :meth:`render` (advances the noise).

        Raises:
            SourceError: the scene has no colour (the chart, or a grey image).
        """
        p = self.params
        if self.still_kinds == ():
            raise SourceError(f"{self.name}: the scene is grey; give a colour image (sim:IMAGE) for colour frames")
        scene = self._scene_bgr.astype(np.float32) / np.float32(255.0)
        blurred = defocus(scene, blur_radius_px(position, p))
        return sensor(blurred, self._rng, exposure=p.exposure, analogue_gain=p.analogue_gain,
                      full_well_e=p.full_well_e, read_noise_e=p.read_noise_e)

    def _open(self) -> None:
        if self._scene is None:
            _ = self.scene
            _release_scratch()
        self._next_time = time.monotonic()

    def render(self, position: float) -> np.ndarray:
        """The 8-bit luma the camera would give at a lens position (advances the noise).

        Returns a new array each call (frames may be kept by the caller); the float
        scratch buffers are reused.
        """
        p = self.params
        scene = self.scene
        if self._blur is None or self._blur.shape != scene.shape:
            self._blur = np.empty(scene.shape, np.float32)
        blurred = defocus(scene, blur_radius_px(position, p), out=self._blur)
        return sensor(blurred, self._rng, exposure=p.exposure, analogue_gain=p.analogue_gain,
                      full_well_e=p.full_well_e, read_noise_e=p.read_noise_e)

    def _read(self) -> Frame:
        p = self.params
        if p.realtime:
            delay = self._next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_time = max(self._next_time + 1.0 / p.fps, time.monotonic() - 1.0 / p.fps)
        position = self.lens_position
        color = None
        if self.still_wanted and self.still_kinds:
            import cv2
            color = self.render_color(position)  # the luma is this colour frame's, as a camera's is
            luma = cv2.cvtColor(color, cv2.COLOR_BGR2GRAY)
        else:
            luma = self.render(position)
        return Frame(
            luma=luma,
            index=self._index,
            timestamp_ns=time.monotonic_ns() if p.realtime else int(self._index * 1e9 / p.fps),
            lens_position=position,
            exposure_us=int(round(1e6 / p.fps * min(p.exposure, 1.0))),
            analogue_gain=p.analogue_gain,
            extra={"blur_px": blur_radius_px(position, p)},
            color_bgr=color,
        )

    def _close(self) -> None:
        self._blur = None  # scratch only; the scene stays for a reopen
