"""The daemon's parts made from a config: source, analyzer, outputs, the focus drive and the
MQTT bridge.

Optional parts (outputs, drive) are imported when first made, so a build without them (or a
machine without their libraries) still serves.
"""

import dataclasses
import logging
from typing import Optional, Tuple

from ..exc import ModelError, PiFocusError, is_lgpio_error
from .status import drive_position

# One logger for the whole service package: the journal keeps saying "pifocus.service: ...".
log = logging.getLogger("pifocus.service")


def make_source(cfg):
    """The configured frame source (not yet opened); a picamera2 source gets its raw stream
    (``raw=True``) when ``[web] capture_format = "dng"``.

    Raises:
        ConfigError, SourceError: unknown source or bad options.
    """
    from ..commands._common import make_source as make
    web = getattr(cfg, "web", None)
    if (web is not None and web.capture_format == "dng" and cfg.source.name.lower().startswith("picamera2")
            and "raw" not in cfg.source.options):
        # DNG stills need picamera2's raw stream (request.save_dng reads "raw")
        from dataclasses import replace
        cfg = replace(cfg, source=replace(cfg.source, options=dict(cfg.source.options, raw=True)))
    return make(cfg)


def make_analyzer(cfg):
    """The configured focus analyzer (loads the model).

    Raises:
        ConfigError, ModelError: bad analysis options; the model cannot be loaded.
    """
    from ..commands._common import make_analyzer as make
    return make(cfg)


def make_first_analyzer(cfg) -> Tuple[object, Optional[str]]:
    """The configured analyzer for a starting service, and why it is not the configured one.

    A CNN model that cannot be loaded does not stop the service: then this returns a
    Laplacian-only analyzer and the reason (for the log and ``/api/status`` ``errors``).

    Raises:
        ConfigError, ModelError: bad analysis options; a model error without the CNN on.
    """
    try:
        return make_analyzer(cfg), None
    except ModelError as e:
        if cfg.analysis is None or not cfg.analysis.use_cnn:
            raise
        # An unattended rig keeps judging focus rather than restart-looping.
        why = f"CNN unavailable, running Laplacian-only: {e}"
        log.error("%s", why)
        return make_analyzer(cfg.replace(analysis=dataclasses.replace(cfg.analysis, use_cnn=False))), why


def make_outputs(cfg, enabled: bool = True):
    """The configured output group, or None when ``enabled`` is False or the build has no
    outputs support.

    Raises:
        OutputError: a pin cannot be claimed.
    """
    if not enabled or cfg.outputs is None:
        return None
    from ..commands._common import make_outputs as make
    return make(cfg)


def open_drive(cfg, source) -> Tuple[Optional[object], Optional[str]]:
    """The configured focus drive, opened, and why there is none.

    Returns ``(drive, None)``, or ``(None, None)`` when no drive is configured (or this
    build has no drive support), or ``(None, reason)`` when the configured drive cannot be
    used: a ``sim`` drive without the ``sim`` source, or it failed to open.  Never raises
    for a drive that will not open: the service runs without one and says why.
    """
    params = getattr(cfg, "drive", None)
    if params is None:
        return None, None
    try:
        from ..drive import open_drive as make
    except ImportError:
        return None, None
    spec = str(getattr(params, "name", "") or "").strip()
    if spec.lower() in ("", "none", "off"):
        return None, None
    if spec.lower() == "sim" and type(source).__name__ != "SimulatedSource":
        why = (f"drive 'sim' moves the simulated lens only; the source is {source.name!r} "
               "(set [drive] name to your real drive, or 'none')")
        log.info("no focus drive: %s", why)
        return None, why
    try:
        d = make(spec, source=source, params=params)
        d.open()
    except Exception as e:  # PiFocusError, ImportError, lgpio.error, OSError: run without it
        if not isinstance(e, (PiFocusError, ImportError, OSError)) and not is_lgpio_error(e):
            raise
        log.error("focus drive not available: %s", e)
        return None, f"drive {spec!r}: {e}"
    log.info("focus drive %s ready at position %s", spec, drive_position(d))
    return d, None


def close_drive(drive) -> None:
    """Close ``drive`` (de-energizes the motor and saves the position); logs, never raises."""
    if drive is None:
        return
    try:
        drive.close()
        log.info("focus drive closed at position %s", drive_position(drive))
    except Exception:  # shutdown goes on whatever the drive does
        log.exception("closing the focus drive failed")


def make_mqtt(cfg, controls, reload_fn, reload_error):
    """The started :class:`pifocus.rig.bridge.MqttBridge` when ``[mqtt] enabled`` (it
    connects in the background), else None.

    Args:
        cfg: the config; controls: the service's controls (what the bridge may ask);
        reload_fn: ``fn() -> bool`` for the ``reload`` command, or None;
        reload_error: ``fn() -> str | None``, why the last reload failed.

    Raises:
        ConfigError: paho-mqtt is missing, or the TLS settings cannot be used.
    """
    params = getattr(cfg, "mqtt", None)
    if params is None or not params.enabled:
        return None
    from ..rig.bridge import MqttBridge
    return MqttBridge(controls, params, reload_fn=reload_fn, reload_error=reload_error).start()
