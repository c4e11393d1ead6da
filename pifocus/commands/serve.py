"""``pifocus serve``: the headless service (systemd unit ``systemd/pifocus.service``)."""

from . import _common
from ..argtypes import bounded_int

PORT = bounded_int(0, 65535)

HELP = "run headless as a service: live loop, systemd notify/watchdog, phone preview page"
DESCRIPTION = """\
Run the live focus loop unattended, as systemd's pifocus.service does: frames from the
configured source through the analysis to the GPIO outputs, with

  * sd_notify: READY=1 once frames flow, WATCHDOG=1 from the frame loop, STATUS= lines;
  * SIGHUP reloads the config file (a bad file is logged and the running config kept);
  * SIGTERM/SIGINT stop within 2 s (LED off, motor de-energized, position saved);
  * a lost camera shows the error pattern and is reopened with backoff;
  * the phone preview page and JSON API (see pifocus/web/API.md) on [web] host:port
    (127.0.0.1:8080 by default; a token is required to bind beyond localhost);
  * with [mqtt] enabled: state, events and commands over an MQTT broker for a rig of
    cameras (pifocus/web/MQTT.md; the dashboard is `pifocus rig`).

  pifocus serve --config /etc/pifocus/pifocus.toml
  pifocus serve --source sim --size 640x480 --port 8080     try it on a PC
"""


def add_arguments(p):
    """Options of ``pifocus serve``: config, source/analysis overrides, web host/port."""
    _common.add_config_arg(p)
    _common.add_source_args(p)
    _common.add_analysis_args(p)
    p.add_argument("--host", metavar="ADDR", help="bind the web page here (overrides [web] host)")
    p.add_argument("--port", type=PORT, metavar="N", help=f"web page port ({PORT.range}; overrides [web] port; 0 = any free)")
    p.add_argument("--no-web", action="store_true", help="no preview page or API")
    p.add_argument("--no-outputs", action="store_true", help="do not touch GPIO outputs")


def _apply_web_flags(cfg, args):
    import dataclasses

    from ..exc import ConfigError

    web = cfg.web
    if web is None:
        return cfg
    changes = {}
    if args.host:
        changes["host"] = args.host
    if args.port is not None:
        changes["port"] = args.port
    if args.no_web:
        changes["enabled"] = False
    if not changes:
        return cfg
    try:
        return cfg.replace(web=dataclasses.replace(web, **changes))
    except ConfigError as e:
        raise ConfigError(f"command line: {e}") from e


def run(args, console) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit status (0 stopped, 1 loop failed)."""
    import logging

    from ..service import Service

    if not args.verbose and not args.debug:
        # A daemon's journal should say when it became ready, reloaded, lost the camera...
        logging.getLogger("pifocus").setLevel(logging.INFO)

    cfg = _apply_web_flags(_common.load_config(args), args)

    def reload(path):
        # Command-line flags keep overriding the file on every reload.
        import argparse
        ns = argparse.Namespace(**vars(args))
        ns.config = path
        return _apply_web_flags(_common.load_config(ns), ns)

    svc = Service(cfg, outputs_enabled=not args.no_outputs, reload_fn=reload)
    code = svc.run()
    console.note(f"pifocus serve: stopped ({svc.pipeline.frames if svc.pipeline else 0} frames)")
    return code
