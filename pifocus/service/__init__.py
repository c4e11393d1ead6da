"""The headless daemon behind ``pifocus serve``: the live loop, systemd, signals, the web page.

Modules:

* :mod:`.daemon` -- :class:`Service`: start, run, stop, signals, watchdog and supervision
  of a lost camera; it owns every part below.
* :mod:`.reload` -- ``SIGHUP``: re-read the config and swap in what changed (the old config
  stays on any error).
* :mod:`.controls` -- :class:`~.controls.ServiceControls`: what the page (and the MQTT
  bridge) may ask -- ROI, analysis mode, peaking, outputs on/off, nudge, autofocus and its worker,
  capture, status.  Its contract is :class:`pifocus.controls.Controls`; the daemon owns one
  and the web server gets only that object.
* :mod:`.status` -- the status document (``GET /api/status``), the ``STATUS=`` line and
  the frame rate behind them.
* :mod:`.sdnotify` -- :class:`SdNotifier` (the ``sd_notify`` protocol over
  ``$NOTIFY_SOCKET``, abstract ``@`` sockets included) and the shared watchdog/status
  schedule.
* :mod:`.actions` -- the queue of work the frame loop runs between frames: everything that
  touches the analyzer or the outputs runs in that one thread.
* :mod:`.source` -- :class:`WatchedSource`, the source proxy the watchdog and reload use.
* :mod:`.parts` -- source, analyzer, outputs, focus drive and MQTT bridge made from a config.
* :mod:`.captures` -- stills from the live loop: the capture queue and the atomic writer.
* :mod:`.rack` -- :class:`~.rack.PresetControls`: rack-focus presets (save, go at a speed,
  stop) for the controls.
* :mod:`.bracket` -- :class:`~.bracket.BracketControls`: focus brackets (``/api/stack``) for the
  controls.
* :mod:`.follow` -- :class:`~.follow.FollowFocus`: continuous autofocus in the live loop
  (``serve`` and ``run --af-mode continuous``).
* :mod:`.live` -- :class:`~.live.LiveReports` (the reports of an autofocus run's frames for
  the status and the preview) and :class:`~.live.MeterCarry` (the meter across an ROI or
  mode change).

``from pifocus.service import Service, SdNotifier, WatchedSource, ServiceError`` works as
it did when this was one module (``ServiceError`` itself lives in :mod:`pifocus.exc`).
"""

from ..exc import ServiceError
from .controls import ServiceControls
from .daemon import Service
from .sdnotify import SdNotifier
from .source import WatchedSource

__all__ = ["Service", "ServiceControls", "SdNotifier", "ServiceError", "WatchedSource"]
