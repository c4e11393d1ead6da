"""The controls interface: what a front end (the web page, later MQTT) may ask the service.

:class:`Controls` is a :class:`typing.Protocol`: it says what the object handed to a front
end must offer and nothing about how.  The service implements it
(:class:`pifocus.service.controls.ServiceControls`); the web server
(:class:`pifocus.web.server.WebServer`) only calls it.  It lives here, in a module that
imports nothing from pifocus, so both sides can import it without an import cycle: the web
package never imports :mod:`pifocus.service`.

Errors: every control raises :class:`pifocus.exc.ServiceError` for a request it cannot
carry out now; its ``status`` attribute is the HTTP status that fits (400 bad value, 409
conflict, 503 not possible now).  Anything else escaping a control is a bug (the web server
answers 500 and logs the traceback).

Threading: every method may be called from any thread (one per HTTP request).  Whatever
touches the analyzer or the outputs runs in the frame loop's thread between two frames, so
a call that needs a frame waits for one (and raises ``ServiceError`` 503 when none comes).
"""

from typing import Any, Optional, Protocol, Sequence, Tuple, runtime_checkable


@runtime_checkable
class Controls(Protocol):
    """The controls a front end may use (see the module docstring for errors and threads).

    ``hub``
        The :class:`~pifocus.web.preview.PreviewHub` of the live preview, or None when the
        preview is not running.  Read-only.
    ``status() -> dict``
        The status document, JSON-ready: exactly what ``GET /api/status`` returns (fields in
        ``pifocus/web/API.md``).  Never raises.
    ``set_roi(roi) -> tuple``
        ``roi``: normalized ``[x, y, w, h]`` (fractions of the frame width/height, 0..1), or
        None for the default centre-weighted region.  Starts a new focusing pass (peak hold
        reset).  Returns the effective ROI ``(x, y, w, h)``, normalized.
        Raises 400 bad rectangle; 503 no frames.
    ``set_analysis_mode(mode) -> str``
        ``mode``: ``"cnn"`` or ``"laplacian"``.  Returns the mode in use.
        Raises 400 unknown mode; 503 the CNN model cannot be loaded (the running mode stays)
        or no frames.
    ``set_peaking(on) -> bool``
        Focus peaking drawn on the preview on/off.  Returns the new state.
        Raises 503 the preview is not running.
    ``set_outputs(on) -> bool``
        GPIO outputs (LED, meter, buzzer, trigger) on, or off with their pins released.
        Returns the new state.  Raises 409 outputs disabled for this service
        (``--no-outputs``); 503 a pin cannot be claimed again, or no frames.
    ``nudge(steps) -> dict``
        ``steps``: signed integer drive steps, ``1 <= |steps| <= [web] nudge_max_steps``.
        Returns ``{"position": float | None}`` (drive position in steps after the move).
        Raises 400 not an integer, out of range or refused by a soft limit; 409 autofocus
        running; 503 no focus drive.
    ``start_autofocus(strategy=None) -> dict``
        ``strategy``: an autofocus strategy name (``"model"``, ``"sweep"``,
        ``"continuous"``) or None for ``[autofocus] strategy``.  Starts one run in the
        background and returns at once with the AF state ``{"state": "running",
        "strategy": str, "started": unix seconds}``; follow it in ``status()["autofocus"]``.
        Raises 400 unknown strategy; 409 already running or the drive is moving; 503 no
        focus drive or no autofocus support.
    ``set_af_mode(mode) -> str``
        ``mode``: ``"single"`` or ``"continuous"`` (follow focus in the frame loop).
        Returns the mode in use.  Raises 400 unknown mode; 503 continuous without a drive.
    ``cancel_autofocus() -> dict``
        Stop a running autofocus run at its next frame (the lens stays where it is) and
        return the AF state (``"cancelled"`` once it has stopped).  Never raises: with
        nothing running the state is returned unchanged.
    ``capture(fmt=None, timeout=3.0, not_before_ns=None) -> dict``
        ``fmt``: ``"png"``, ``"jpg"`` (``"jpeg"`` accepted) or None for ``[web]
        capture_format``; ``timeout`` in seconds to wait for the next frame;
        ``not_before_ns``: the frame must be stamped at or after this
        ``time.monotonic_ns()`` time (synchronised rig captures).  Saves that
        full-resolution luma frame into ``[web] captures_dir`` and returns ``{"file": name,
        "path": absolute path, "width": px, "height": px, "frame": index, "lens_position":
        float | None, "bytes": file size, "timestamp_ns": the frame's stamp}``.  Raises 400 unknown format; 503 no frame within
        ``timeout`` or the file cannot be written; 507 the disk is full (no partial file
        is left).

    ``presets() -> dict``
        Name -> ``{"position": drive units, "units": str, "time": unix s}``.  Never raises.
    ``save_preset(name) -> dict``
        Store the drive's current position as ``name`` (1..24 letters, digits, space, ``_``,
        ``-``).  Raises 400 bad name / too many; 409 a preset move runs; 503 no drive or the
        file cannot be written.
    ``delete_preset(name) -> None``
        Raises 400 no such preset; 503 the file cannot be written.
    ``go_preset(name, speed_units_s=200.0) -> dict``
        Start moving the lens to the preset at that speed (drive units/s) in the background;
        returns the move's state (``{"state": "moving", ...}``, then ``done`` / ``stopped`` /
        ``failed`` in ``status()["rack"]``).  Raises 400 no such preset / bad speed; 409 the
        drive is busy; 503 no drive.
    ``stop_rack() -> dict``
        Stop a preset move between two legs; returns its state.  Never raises.
    ``start_stack(near, far, overlap=0.1, fuse=False) -> dict``
        Start a focus bracket over ``near..far`` (drive units; either order) with ``overlap``
        (share of the measured depth of focus), stills into ``captures_dir/stack-*``; returns
        its state (``"running"``, then ``done`` / ``stopped`` / ``failed`` in
        ``status()["stack"]`` with ``phase``, ``done``, ``total``).  Raises 400 bad range;
        409 the drive is busy; 503 no drive.
    ``stop_stack() -> dict``
        Stop a bracket between two frames; returns its state.  Never raises.
    """

    @property
    def hub(self) -> Optional[Any]:
        """The preview hub, or None when the preview is not running."""

    def status(self) -> dict:
        """The status document (``GET /api/status``)."""

    def set_roi(self, roi: Optional[Sequence[float]]) -> Tuple[float, float, float, float]:
        """Set the subject region (normalized ``x, y, w, h``; None = default)."""

    def set_analysis_mode(self, mode: str) -> str:
        """Switch to ``"cnn"`` or ``"laplacian"`` analysis; returns the mode in use."""

    def set_peaking(self, on: bool) -> bool:
        """Focus peaking on the preview on/off; returns the new state."""

    def set_outputs(self, on: bool) -> bool:
        """GPIO outputs on/off; returns the new state."""

    def nudge(self, steps: int) -> dict:
        """Move the focus drive by ``steps`` (signed); returns ``{"position": ...}``."""

    def start_autofocus(self, strategy: Optional[str] = None) -> dict:
        """Start one autofocus run in the background; returns the AF state."""

    def cancel_autofocus(self) -> dict:
        """Cancel the running autofocus run; returns the AF state."""

    def set_af_mode(self, mode: str) -> str:
        """``"single"`` or ``"continuous"`` autofocus; returns the mode in use."""

    def presets(self) -> dict:
        """All rack-focus presets (name -> position...)."""

    def save_preset(self, name: str) -> dict:
        """Store the drive's position as preset ``name``."""

    def delete_preset(self, name: str) -> None:
        """Remove preset ``name``."""

    def go_preset(self, name: str, speed_units_s: float = 200.0) -> dict:
        """Start moving the lens to preset ``name`` at that speed."""

    def stop_rack(self) -> dict:
        """Stop a preset move."""

    def start_stack(self, near: float, far: float, overlap: float = 0.1, fuse: bool = False) -> dict:
        """Start a focus bracket over ``near..far``."""

    def stop_stack(self) -> dict:
        """Stop a focus bracket."""

    def capture(self, fmt: Optional[str] = None, timeout: float = 3.0, not_before_ns: Optional[int] = None) -> dict:
        """Save the next full-resolution luma frame; returns what was written."""
