"""The photographer's tools in the API: the magnifier (``GET /api/zoom``), cancelling
autofocus, and the ``POST /api/mode`` fields for the preview's view (zebra, peaking colour)
and the autofocus mode (single / continuous).

:class:`ToolRoutes` is a mixin of the request handler in :mod:`.server`: it uses the
handler's ``query``, ``_hub()``, ``_send`` and raises :class:`~.request.HTTPError`.
"""

from typing import Optional

from ..exc import ConfigError
from . import PEAKING_COLOURS
from .magnifier import ZOOM_SCALES, ZoomParams
from .request import HTTPError, only

#: Fields of ``POST /api/mode`` handled here: the preview's view, and the autofocus mode.
VIEW_FIELDS = ("zebra", "peaking_colour", "af_mode")


def _number(query: dict, key: str, default: Optional[float], allowed: str) -> Optional[float]:
    """The query parameter ``key`` as a float (``default`` when absent).

    Raises:
        HTTPError: 400 naming the parameter, the value and what is allowed.
    """
    vals = query.get(key)
    if not vals:
        return default
    try:
        return float(vals[-1])
    except ValueError:
        raise HTTPError(400, f"{key} = {vals[-1]!r} is not a number; allowed: {allowed}") from None


def zoom_params(query: dict) -> ZoomParams:
    """:class:`~.magnifier.ZoomParams` from ``?x=&y=&scale=&w=&h=`` (defaults: centre, 1x).

    Raises:
        HTTPError: 400 for a missing, non-numeric or out-of-range value (named in the message).
    """
    x = _number(query, "x", 0.5, "0..1 (fraction of the frame width)")
    y = _number(query, "y", 0.5, "0..1 (fraction of the frame height)")
    scale = _number(query, "scale", 1, "1, 2 or 4")
    w = _number(query, "w", 480, "64..1920 px")
    h = _number(query, "h", 360, "64..1920 px")
    if scale not in ZOOM_SCALES:
        raise HTTPError(400, f"scale = {scale:g} is invalid; allowed: 1, 2 or 4 (screen px per sensor px)")
    try:
        return ZoomParams(x=x, y=y, scale=int(scale), width_px=int(w), height_px=int(h))
    except ConfigError as e:
        raise HTTPError(400, str(e)) from None


class ToolRoutes:
    """Handler methods for the magnifier, AF cancel, presets and the view options (mixed
    into the handler)."""

    def _get_presets(self) -> None:
        self._json(200, {"ok": True, "presets": self.controls.presets()})

    def _post_presets(self, body: dict) -> None:
        only(body, ("save", "go", "delete", "speed", "stop"))
        acts = [k for k in ("save", "go", "delete", "stop") if k in body]
        if len(acts) != 1:
            raise HTTPError(400, 'give one of {"save": NAME}, {"go": NAME, "speed": UNITS_PER_S}, '
                                 '{"delete": NAME} or {"stop": true}')
        act = acts[0]
        if act == "stop":
            return self._json(200, {"ok": True, "rack": self.controls.stop_rack()})
        name = body[act]
        if not isinstance(name, str):
            raise HTTPError(400, f"{act} takes a preset name (a string, e.g. \"A\")")
        if "speed" in body and act != "go":
            raise HTTPError(400, "speed goes with go")
        if act == "save":
            return self._json(201, {"ok": True, "preset": self.controls.save_preset(name)})
        if act == "delete":
            self.controls.delete_preset(name)
            return self._json(200, {"ok": True, "deleted": name})
        speed = body.get("speed", 200.0)
        if isinstance(speed, bool) or not isinstance(speed, (int, float)):
            raise HTTPError(400, f"speed = {speed!r} must be a number of drive units per second (e.g. 200)")
        self._json(202, {"ok": True, "rack": self.controls.go_preset(name, float(speed))})

    def _get_zoom(self) -> None:
        zp = zoom_params(self.query)
        out = self._hub().zoom(zp, timeout=2.0)
        if out is None:
            raise HTTPError(503, "no frame to magnify yet (camera not delivering frames)")
        jpeg, headers = out
        self._send(200, jpeg, "image/jpeg", headers)

    def _post_af_cancel(self, body: dict) -> None:
        only(body, ())
        self._json(200, {"ok": True, "autofocus": self.controls.cancel_autofocus()})

    def _post_stack(self, body: dict) -> None:
        only(body, ("near", "far", "overlap", "fuse", "stop"))
        if body.get("stop"):
            return self._json(200, {"ok": True, "stack": self.controls.stop_stack()})
        if "near" not in body or "far" not in body:
            raise HTTPError(400, 'give {"near": POS, "far": POS} (drive units; optional "overlap": 0..0.9, '
                                 '"fuse": true) or {"stop": true}')
        fuse = body.get("fuse", False)
        if not isinstance(fuse, bool):
            raise HTTPError(400, "fuse must be true or false")
        st = self.controls.start_stack(body["near"], body["far"], body.get("overlap", 0.1), fuse)
        self._json(202, {"ok": True, "stack": st})

    def _view_modes(self, body: dict) -> dict:
        """Apply ``af_mode`` (through the controls) and ``zebra`` / ``peaking_colour`` (to the
        preview) of a ``/api/mode`` body.

        Raises:
            HTTPError: 400 bad value; 503 the preview is not running.
        """
        out = {}
        if "af_mode" in body:
            if not isinstance(body["af_mode"], str):
                raise HTTPError(400, "af_mode must be 'single' or 'continuous'")
            out["af_mode"] = self.controls.set_af_mode(body["af_mode"])
        if not any(k in body for k in ("zebra", "peaking_colour")):
            return out
        hub = self._hub()
        if "zebra" in body:
            if not isinstance(body["zebra"], bool):
                raise HTTPError(400, "zebra must be true or false")
            hub.zebra = out["zebra"] = body["zebra"]
        if "peaking_colour" in body:
            c = body["peaking_colour"]
            if c not in PEAKING_COLOURS:
                raise HTTPError(400, f"peaking_colour = {c!r} is unknown; allowed: {', '.join(PEAKING_COLOURS)}")
            hub.peaking_colour = out["peaking_colour"] = c
        return out
