"""A fake ``picamera2`` module for testing :mod:`pifocus.sources.picamera2` off the Pi.

It mimics, for what the adapter calls, the real API (checked against picamera2's source):
``Picamera2(camera_num)`` (``IndexError`` for a missing camera number), ``sensor_modes``
(dicts with ``format``, ``unpacked``, ``bit_depth``, ``size``, ``fps``, ``crop_limits``),
``camera_properties``, ``create_video_configuration(main=, raw=, buffer_count=, controls=,
queue=, sensor=, display=, encode=...)``, ``configure``, ``camera_config["main"]`` with
``size``/``stride``/``format``, ``start/stop/close``, ``set_controls``,
``capture_request(wait=, flush=)`` -> a request with ``get_metadata()``, ``release()``,
``make_buffer()``, ``make_array()`` and ``save_dng()``; ``MappedArray(request, "main", write=)``
whose ``.array`` is the YUV420 buffer as shape ``(h * 3 // 2, stride)``.

Stills follow ``picamera2/request.py`` ``CompletedRequest``: ``make_buffer(name)`` is a copy
(``np.array`` of the mapped buffer) and raises ``RuntimeError("Stream 'raw' is not defined")``
for a stream that was not configured; ``make_array`` reshapes it by the stream's config
(``Helpers.make_array``: YUV420 as ``(h * 3 // 2, stride)``, raw as ``(h, stride)``);
``save_dng(file_output, name="raw")`` is ``Helpers.save_dng``: PiDNG's ``PICAM2DNG`` over
``Picamera2Camera(config, metadata)``, bytes into a ``BytesIO``.  ``release()`` drops the
request's ``stream_map`` and ``config`` (sets them to ``None``), so any use of a released
request raises (``AttributeError``: ``'NoneType' object has no attribute 'get'``), as the
real one does.  The chroma planes carry a warm tint (V above neutral), so a colour still
shows red above blue.  A configured raw stream (``raw={}`` or a dict) is SRGGB12_CSI2P
packed 12-bit at the sensor mode's size, its pixels the luma scene on an RGGB mosaic.

The camera keeps a pool of ``buffer_count`` buffers: a request not released removes one from
the pool and a capture with an empty pool raises, as a real camera would stall -- so a test
catches an adapter that leaks requests.  No test functions live here; other test modules load
it with :func:`install`.

Buffer lifetime follows picamera2's ``allocators/dmaallocator.py``: ``DmaAllocator.allocate``
maps every buffer once (``mmap.mmap(fd, buffersize, MAP_SHARED, ...)``); here each buffer is a
real anonymous ``mmap.mmap(-1, size)``, and ``MappedArray`` gives a numpy view of it (as
``request.py`` ``MappedArray.__enter__`` does with ``np.array(b, copy=False)``).
``Picamera2.close()`` (``picamera2/picamera2.py``) ends with ``del self.allocator``, whose
``DmaAllocator.__del__`` -> ``close()`` -> ``cleanup()`` calls ``mmap.close()`` on every map:
with a numpy view still alive that raises ``BufferError`` inside ``__del__`` (Python only
prints "Exception ignored"), the remaining maps and the dma-buf fds are never closed.  The
fake swallows the error the same way and counts it in ``Picamera2.leaked_buffers``.

Lens timing (``Picamera2.lens = True``: a Camera Module 3, imx708) follows
``picamera2/picamera2.py`` ``Picamera2.recycle_request``: controls from ``set_controls`` are
set on the next *recycled* request, which joins the back of libcamera's queue behind the
``buffer_count - 1`` requests already in flight; and libcamera's
``src/ipa/rpi/controller/rpi/af.cpp``: ``Af::setLensPosition`` (manual mode only, clamped to
the map's domain) and ``Af::prepare`` each call ``updateLensPosition``, which moves
``fsmooth_`` at most ``max_slew`` towards the target (1.5 D per frame, ``imx708.json``
``rpi.af.speeds.normal.max_slew``); ``getLensPosition`` reports ``fsmooth_``.  So a frame's
metadata ``LensPosition`` is the position *after* that frame's update while its pixels were
exposed at the position before it (``Picamera2.exposed[n]``, per capture).  A (re)opened
camera starts at the tuning default, 1.0 D (``ranges.normal.default``).
"""

import collections
import math
import mmap
import sys
import types

import numpy as np

PAD = 0xEE  # value of the stride padding bytes: must never show up in a luma frame

HQ_MODES = [
    {"size": (2028, 1080), "fps": 50.03, "crop_limits": (0, 440, 4056, 2160)},
    {"size": (2028, 1520), "fps": 40.01, "crop_limits": (0, 0, 4056, 3040)},
    {"size": (1332, 990), "fps": 120.05, "crop_limits": (696, 528, 2664, 1980)},
    {"size": (4056, 3040), "fps": 10.0, "crop_limits": (0, 0, 4056, 3040)},
]


def _scene(w, h, defocus):
    """A textured test scene blurred by ``defocus`` dioptres (lens cameras with focus_at)."""
    import cv2
    rng = np.random.default_rng(7)
    base = cv2.GaussianBlur(rng.normal(128, 60, (h, w)).astype(np.float32), (0, 0), 1.2)
    out = cv2.GaussianBlur(base, (0, 0), 0.3 + 1.5 * defocus)
    return np.clip(out, 0, 255).astype(np.uint8)


def _hq_modes():
    out = []
    for m in HQ_MODES:
        fmt = "SRGGB10_CSI2P" if m["size"] == (1332, 990) else "SRGGB12_CSI2P"
        out.append(dict(m, format=fmt, unpacked=fmt.split("_")[0], bit_depth=int(fmt[5:7]),
                        exposure_limits=(31, 667234896)))
    return out


class DmaAllocator:
    """picamera2's allocator that keeps buffers mapped (what zero copy relies on).

    Follows ``picamera2/allocators/dmaallocator.py``: ``allocate()`` maps each buffer once,
    ``close()`` (from ``__del__``) closes every map via ``cleanup()`` and then the fds.
    """

    def __init__(self):
        self.maps = []
        self.fds_open = 0

    def allocate(self, count, size):
        self.close()
        self.maps = [mmap.mmap(-1, size) for _ in range(count)]
        self.fds_open = count

    def close(self):
        # DmaAllocator.cleanup(): v.close() on each map -- BufferError while a view exports it
        for m in self.maps:
            m.close()
        self.maps = []
        self.fds_open = 0  # "Close our copies of fds": only reached when every map closed


V_TINT = 170  # V (Cr) plane value: above the neutral 128, so stills are warm (R > B)


def _pack12(values):
    """uint16 (h, w) 12-bit values as CSI-2 packed bytes (h, w * 3 // 2): two pixels' high
    8 bits, then their low nibbles -- the layout PiDNG's ``RPICAM2DNG`` unpacks."""
    v = values.astype(np.uint16)
    out = np.empty((v.shape[0], v.shape[1] // 2 * 3), np.uint8)
    out[:, 0::3] = v[:, 0::2] >> 4
    out[:, 1::3] = v[:, 1::2] >> 4
    out[:, 2::3] = (v[:, 0::2] & 0x0F) | ((v[:, 1::2] & 0x0F) << 4)
    return out


class ColorSpace:
    """A ``libcamera.ColorSpace`` preset as picamera2 puts it in ``camera_config["colour_space"]``
    (its repr as the libcamera Python bindings print it: ``libcamera.ColorSpace 'Rec709'``)."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"libcamera.ColorSpace '{self.name}'"

    # libcamera's Python bindings: the presets as static constructors (py_color_space.cpp)
    @staticmethod
    def Sycc():
        return ColorSpace("sYCC")

    @staticmethod
    def Rec709():
        return ColorSpace("Rec709")

    @staticmethod
    def Smpte170m():
        return ColorSpace("SMPTE170M")

    @property
    def full_range(self):
        """libcamera ColorSpace::Range::Full only for sYCC among these presets (color_space.cpp)."""
        return self.name == "sYCC"


def _encode_luma(values, colour_space):
    """The ISP's Y for scene values 0..255: limited range squeezes them to 16..235."""
    v = np.asarray(values, np.float32)
    if not colour_space.full_range:
        v = 16.0 + v * (219.0 / 255.0)
    return np.clip(np.round(v), 0, 255).astype(np.uint8)


class FakeRequest:
    def __init__(self, cam, slot, shape, metadata):
        self.cam = cam
        self.slot = slot
        self.shape = shape
        self.metadata = metadata
        self.released = False
        # request.py CompletedRequest.__init__: copies of the camera's config and stream map
        self.config = dict(cam.camera_config)
        self.stream_map = {k: k for k in ("main", "raw") if cam.camera_config.get(k) is not None}
        self._raw = None

    @property
    def buf(self):
        """A fresh numpy view of this request's mmap'd buffer (drop it after use)."""
        return np.frombuffer(self.cam.buffer_maps[self.slot], np.uint8,
                             self.shape[0] * self.shape[1]).reshape(self.shape)

    def get_metadata(self):
        assert not self.released, "metadata of a released request"
        return dict(self.metadata)

    def make_buffer(self, name):
        """request.py CompletedRequest.make_buffer: a 1-D copy of the named stream's buffer."""
        if self.stream_map.get(name) is None:  # AttributeError once released (stream_map None)
            raise RuntimeError(f'Stream {name!r} is not defined')
        if name == "main":
            return np.array(self.buf).ravel()  # np.array(mmap): a copy
        if self._raw is None:  # the sensor's raw frame (made on first read: same pixels)
            self._raw = self.cam.raw_frame(self.metadata)
        return self._raw.ravel().copy()

    def make_array(self, name):
        """request.py make_array -> Helpers.make_array: the buffer reshaped by its config."""
        buf = self.make_buffer(name)
        cfg = self.config[name]
        w, h = cfg["size"]
        if cfg["format"] == "YUV420":
            return buf.reshape((h * 3 // 2, cfg["stride"]))
        return buf.reshape((h, cfg["stride"]))  # formats.is_raw

    def save_dng(self, file_output, name="raw"):
        """request.py save_dng -> Helpers.save_dng: PiDNG over the raw buffer and metadata."""
        import io
        from pidng.camdefs import Picamera2Camera  # the real request.py imports these at the top
        from pidng.core import PICAM2DNG

        buffer = self.make_buffer(name)
        config = dict(self.config[name])
        w, h = config["size"]
        raw = buffer.reshape((h, config["stride"]))
        r = PICAM2DNG(Picamera2Camera(config, self.get_metadata()))
        r.options(compress=0)
        if isinstance(file_output, io.BytesIO):
            file_output.write(r.convert(raw, ""))
        else:
            r.convert(raw, str(file_output))

    def release(self):
        assert not self.released, "request released twice"
        self.released = True
        self.stream_map = None  # request.py release(): the request, config and stream map go
        self.config = None
        self.cam.outstanding.remove(self)
        self.cam.released += 1
        self.cam.recycle_request()


class MappedArray:
    def __init__(self, request, stream, reshape=True, write=True):
        assert stream == "main"
        self.request = request
        self.write = write
        self.array = None
        request.cam.mapped_write_flags.append(write)

    def __enter__(self):
        assert not self.request.released, "mapping a released request"
        self.array = self.request.buf  # a view of the mmap, as np.array(mmap, copy=False) is
        self.request.cam.open_maps += 1
        return self

    def __exit__(self, *exc):
        self.array = None
        self.request.cam.open_maps -= 1


class Picamera2:
    """Fake camera.  Class attributes let a test inject faults before the source opens it."""

    n_cameras = 1
    lens = False              # True: a Camera Module 3 (imx708) with its focus lens
    raw_modes = True          # False: the camera lists no raw sensor modes
    unmoded_crop = (0, 440, 4056, 2160)  # ScalerCropMaximum after configure without raw modes
    focus_at = None           # lens cameras: dioptres where the test scene is sharp
    fail_init = None          # exception instance raised by __init__
    fail_capture_after = None  # capture number from which capture_request raises RuntimeError
    timeout_capture_after = None  # ... raises TimeoutError
    keep_colour_space = None  # a ColorSpace libcamera's validate() keeps whatever is asked
    instances = []

    stop_blocks = None        # a threading.Event: stop() waits for it (a hung camera)
    failed_inits = 0          # Picamera2(n) calls that raised: each leaks a pipe fd

    def __init__(self, camera_num=0):
        if camera_num >= self.n_cameras:
            # picamera2.py Picamera2.__init__ opens its notify pipe (os.pipe2) before looking
            # the camera up in global_camera_info(): a missing camera leaks that fd
            type(self).failed_inits += 1
            raise IndexError("list index out of range")  # global_camera_info()[camera_num]
        if self.fail_init is not None:
            raise self.fail_init
        self.camera_num = camera_num
        # libcamera reports ScalerCropMaximum only once a configuration is applied: zeros
        # until then (picamera2.py: camera_properties are re-read in configure_)
        self.camera_properties = {"Model": "imx708" if self.lens else "imx477",
                                  "PixelArraySize": (4056, 3040), "ColorFilterArrangement": 0,
                                  "ScalerCropMaximum": (0, 0, 0, 0)}
        self.camera_controls = {"ExposureTime": (31, 667234896, None)}
        if self.lens:
            self.camera_controls.update({"LensPosition": (0.0, 15.0, 1.0), "AfMode": (0, 2, 0)})
        # libcamera state (af.cpp): manual mode, lens at the tuning default after open
        self.af_mode = 0
        self.ftarget = self.fsmooth = 1.0
        self.max_slew = 1.5
        self.exposed = []        # lens position each capture was exposed at (lens cameras)
        self.pending = {}        # Picamera2.controls: set_controls not yet on a request
        self.inflight = collections.deque()  # controls riding on each queued request
        self.camera_config = None
        self.controls_set = {}
        self.started = False
        self.closed = False
        self.outstanding = []
        self.released = 0
        self.captures = 0
        self.open_maps = 0
        self.capture_calls = []
        self.mapped_write_flags = []
        self.cancelled = 0
        self.last_config_kwargs = None
        self.allocator = DmaAllocator()
        self.leaked_buffers = 0   # dma-bufs left open by close() (BufferError in __del__)
        type(self).instances.append(self)

    @property
    def buffer_maps(self):
        return self.allocator.maps

    @property
    def sensor_modes(self):
        assert not self.started, "sensor_modes reconfigures the camera: read it before start()"
        if not self.raw_modes:
            return []
        # picamera2 configures every mode to list it: ScalerCropMaximum is the last one's now
        self.camera_properties["ScalerCropMaximum"] = tuple(HQ_MODES[-1]["crop_limits"])
        return _hq_modes()

    def create_video_configuration(self, main={}, lores=None, raw={}, transform=None, colour_space=None,
                                   buffer_count=6, controls={}, display="main", encode="main",
                                   queue=True, sensor={}, use_case="video"):
        self.last_config_kwargs = dict(main=main, raw=raw, buffer_count=buffer_count, controls=controls,
                                       display=display, encode=encode, queue=queue, sensor=sensor)
        main = dict({"format": "XBGR8888", "size": (1280, 720)}, **main)
        # picamera2.py create_video_configuration: Fast denoising and 30 fps unless the
        # caller says otherwise, and a raw stream (raw={} default) unless raw=None
        controls = dict({"NoiseReductionMode": 1, "FrameDurationLimits": (33333, 33333)}, **controls)
        raw = None if raw is None else dict({"format": "SRGGB12_CSI2P", "size": (4056, 3040)}, **raw)
        # picamera2.py create_video_configuration: colour_space None -> Smpte170m below
        # 1280x720, Rec709 from there up (both limited range); a given one is kept
        if colour_space is None:
            w, h = main["size"]
            colour_space = ColorSpace.Smpte170m() if w < 1280 or h < 720 else ColorSpace.Rec709()
        return {"main": main, "raw": raw, "sensor": sensor, "buffer_count": buffer_count,
                "controls": controls, "queue": queue, "display": display, "encode": encode,
                "colour_space": colour_space}

    def configure(self, config):
        assert not self.started
        w, h = config["main"]["size"]
        assert config["main"]["format"] == "YUV420"
        assert w % 2 == 0 and h % 2 == 0, "YUV420 needs even sizes"
        stride = int(math.ceil(w / 64.0)) * 64  # padded rows, as the ISP delivers them
        size = (config.get("sensor") or {}).get("output_size") or (config.get("raw") or {}).get("size")
        mode = next((m for m in HQ_MODES if size and tuple(m["size"]) == tuple(size)), None)
        raw = None
        if config.get("raw") is not None:  # a raw stream: the sensor mode's size, 12-bit packed
            rw, rh = tuple(mode["size"]) if mode else (w, h)
            raw = {"size": (rw, rh), "format": "SRGGB12_CSI2P", "stride": int(math.ceil(rw * 3 / 2 / 32)) * 32}
            raw["framesize"] = raw["stride"] * rh
        # picamera2.py _update_camera_config: the colour space libcamera validated (a config
        # made by hand without one: picamera2's video default by size)
        cs = self.keep_colour_space or config.get("colour_space") or \
            (ColorSpace.Smpte170m() if w < 1280 or h < 720 else ColorSpace.Rec709())
        self.camera_config = {"main": {"size": (w, h), "stride": stride, "format": "YUV420",
                                       "framesize": stride * h * 3 // 2}, "raw": raw, "colour_space": cs,
                              "buffer_count": config["buffer_count"], "controls": config["controls"]}
        self.controls_set = dict(config["controls"])
        self.camera_properties["ScalerCropMaximum"] = (tuple(mode["crop_limits"]) if mode and self.raw_modes
                                                       else self.unmoded_crop)
        self._allocate(config["buffer_count"], stride * h * 3 // 2)

    def _allocate(self, count, size):
        self.allocator.allocate(count, size)

    def start(self):
        assert self.camera_config is not None, "start before configure"
        self.started = True
        # picamera2.py Picamera2.start_: controls set before start go to camera.start()
        self._apply(dict(self.camera_config["controls"], **self.pending), initial=True)
        self.pending = {}
        self.inflight = collections.deque({} for _ in range(self.camera_config["buffer_count"]))

    def recycle_request(self):
        """picamera2.py Picamera2.recycle_request: the pending controls ride on this request,
        queued behind every request already in flight."""
        self.inflight.append(self.pending)
        self.pending = {}

    def _apply(self, ctrl, initial=False):
        """af.cpp: setMode / setLensPosition for one request's controls, then prepare()."""
        if not self.lens:
            return
        if "AfMode" in ctrl:
            self.af_mode = int(ctrl["AfMode"])
        if "LensPosition" in ctrl and self.af_mode == 0:
            lo, hi, _ = self.camera_controls["LensPosition"]
            self.ftarget = min(max(float(ctrl["LensPosition"]), lo), hi)
            self._slew(jump=initial)
        if not initial:
            self._slew()  # Af::prepare -> updateLensPosition, every frame

    def _slew(self, jump=False):
        """af.cpp Af::updateLensPosition: at most max_slew per call from a known position."""
        if jump:
            self.fsmooth = self.ftarget
        else:
            self.fsmooth = min(max(self.ftarget, self.fsmooth - self.max_slew), self.fsmooth + self.max_slew)

    def stop(self):
        # picamera2.py Picamera2.stop(): waits for the event loop to finish, no timeout
        if self.started and self.stop_blocks is not None:
            self.in_stop = True
            self.stop_blocks.wait()
            self.in_stop = False
        self.started = False

    def close(self):
        # picamera2.py Picamera2.close(): stop(), camera.release(), ..., ``del self.allocator``
        # -> DmaAllocator.__del__ -> close(): an exception there is ignored by Python.
        self.stop()
        self.closed = True
        alloc = getattr(self, "allocator", None)
        if alloc is not None:
            n = len(alloc.maps)
            try:
                alloc.close()
            except BufferError:
                self.leaked_buffers += n
            self.allocator = type(alloc)()

    def set_controls(self, controls):
        self.controls_set.update(controls)
        self.pending.update(controls)

    def free_order(self):
        """Buffer slots in the order the camera refills them (round robin)."""
        k = self.captures % len(self.buffer_maps)
        return list(range(k, len(self.buffer_maps))) + list(range(k))

    def raw_frame(self, md):
        """The raw stream's packed bytes for a capture: the main stream's luma pattern at the
        sensor size on an RGGB mosaic, 12-bit above the black level."""
        cfg = self.camera_config["raw"]
        rw, rh = cfg["size"]
        n = md["SensorTimestamp"] // 1000  # any per-frame value: the pattern moves like the luma
        yy, xx = np.mgrid[0:rh, 0:rw]
        values = 256 + ((xx + yy + n) % 200 + 20) * 16
        packed = np.zeros((rh, cfg["stride"]), np.uint8)
        packed[:, :rw * 3 // 2] = _pack12(values)
        return packed

    def cancel_all_and_flush(self):
        self.cancelled += 1

    def capture_request(self, wait=None, signal_function=None, flush=None):
        assert self.started and not self.closed, "capture on a stopped camera"
        self.capture_calls.append({"wait": wait, "flush": flush})
        n = self.captures
        if self.fail_capture_after is not None and n >= self.fail_capture_after:
            raise RuntimeError("Camera frontend has timed out!")
        if self.timeout_capture_after is not None and n >= self.timeout_capture_after:
            raise TimeoutError()
        if len(self.outstanding) >= self.camera_config["buffer_count"] or not self.inflight:
            raise RuntimeError("no free buffers: the application holds every request (leak)")
        cfg = self.camera_config["main"]
        w, h = cfg["size"]
        stride = cfg["stride"]
        busy = {r.slot for r in self.outstanding}
        slot = next(i for i in self.free_order() if i not in busy)
        req = FakeRequest(self, slot, (h * 3 // 2, stride), {})
        buf = req.buf
        buf[:] = PAD
        yy, xx = np.mgrid[0:h, 0:w]
        if self.lens and self.focus_at is not None:
            scene = _scene(w, h, abs(self.fsmooth - self.focus_at))  # at the exposed position
        else:
            scene = ((xx + yy + 7 * n) % 200 + 20).astype(np.uint8)
        buf[:h, :w] = _encode_luma(scene, self.camera_config["colour_space"])
        buf[h:, :] = 128  # chroma: U (h/4 rows of stride), then V (I420, stride-padded)
        buf[h + h // 4:, :] = V_TINT
        del buf  # no view of ours outlives the capture
        ctrl = self.controls_set
        frame_us = ctrl.get("FrameDurationLimits", (33333, 33333))[0]
        md = {"SensorTimestamp": 1_000_000_000 + n * frame_us * 1000,
              "ExposureTime": int(ctrl.get("ExposureTime", 10000)),
              "AnalogueGain": float(ctrl.get("AnalogueGain", 1.5)),
              "DigitalGain": 1.0, "FocusFoM": 1234 + n, "FrameDuration": frame_us,
              # what PiDNG's Picamera2Camera reads (imx477 values)
              "SensorBlackLevels": (4096, 4096, 4096, 4096), "ColourGains": (2.1, 1.7),
              "ColourCorrectionMatrix": (1.8, -0.6, -0.2, -0.3, 1.6, -0.3, 0.0, -0.6, 1.6)}
        request_controls = self.inflight.popleft()
        if self.lens:
            self.exposed.append(self.fsmooth)      # pixels: the lens before this frame's update
            self._apply(request_controls)
            md["LensPosition"] = float(self.fsmooth)  # af.cpp getLensPosition(): fsmooth_
        self.captures += 1
        req.metadata = md
        self.outstanding.append(req)
        self.last_request = req
        return req


class OldPicamera2(Picamera2):
    """An older picamera2: no ``sensor=`` configuration, no ``flush``, no ``write`` in MappedArray,
    no DmaAllocator (mappings closed on leaving MappedArray)."""

    def __init__(self, camera_num=0):
        super().__init__(camera_num)
        del self.allocator
        self._maps = []

    @property
    def buffer_maps(self):
        return self._maps

    def _allocate(self, count, size):
        self._maps = [mmap.mmap(-1, size) for _ in range(count)]

    def create_video_configuration(self, main={}, lores=None, raw={}, transform=None, colour_space=None,
                                   buffer_count=6, controls={}, display="main", encode="main",
                                   queue=True):
        return super().create_video_configuration(main=main, raw=raw, buffer_count=buffer_count,
                                                  controls=controls, display=display, encode=encode,
                                                  queue=queue)

    def capture_request(self, wait=None, signal_function=None):
        return super().capture_request(wait=wait)


class OldMappedArray(MappedArray):
    def __init__(self, request, stream, reshape=True):
        super().__init__(request, stream, reshape)


def install(monkeypatch, old=False):
    """Put a fresh fake ``picamera2`` module into ``sys.modules``; returns it."""
    mod = types.ModuleType("picamera2")
    cam_cls = type("Picamera2", (OldPicamera2 if old else Picamera2,), {})
    cam_cls.instances = []
    mod.Picamera2 = cam_cls
    mod.MappedArray = OldMappedArray if old else MappedArray
    mod.__fake__ = True
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    # picamera2 imports libcamera's bindings (python3-libcamera) itself: they come with it.
    lib = types.ModuleType("libcamera")
    lib.ColorSpace = ColorSpace
    lib.__fake__ = True
    monkeypatch.setitem(sys.modules, "libcamera", lib)
    return mod
