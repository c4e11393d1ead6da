"""``pifocus rig``: the rig dashboard over MQTT (one page for every camera)."""

from ..argtypes import bounded_int

PORT = bounded_int(0, 65535)
BROKER_PORT = bounded_int(1, 65535)

HELP = "rig dashboard: every camera's verdict, meter, thumbnail and errors over MQTT, focus/capture all"
DESCRIPTION = """\
Serve one page for a whole rig of pifocus cameras.  It subscribes to the MQTT broker
(Mosquitto) the cameras publish to ([mqtt] of each camera's config), and shows every
camera's verdict, focus meter, thumbnail, exposure, lens position and errors in a grid,
with "Focus all", "Capture all" (a synchronised capture 2 s ahead on every camera's own
clock, with the spread of the actual times) and per-camera buttons.  Topics and payloads:
pifocus/web/MQTT.md.

The broker, credentials, rig name and command token come from [mqtt] of --config (the
flags override them); the page binds [web] host and --port, and its commands need the
[web] token when one is set (required beyond localhost), like the phone page.

  pifocus rig --broker 127.0.0.1 --rig studio             page on http://127.0.0.1:8090/
  pifocus rig --config /etc/pifocus/pifocus.toml --port 8090
"""


def add_arguments(p):
    """Options of ``pifocus rig``: config, broker, rig name, page address."""
    from . import _common

    _common.add_config_arg(p)
    p.add_argument("--broker", metavar="HOST[:PORT]", help="MQTT broker (overrides [mqtt] host and port)")
    p.add_argument("--rig", metavar="NAME", help="rig name, the second topic level (overrides [mqtt] rig)")
    p.add_argument("--host", metavar="ADDR", help="bind the page here (overrides [web] host; beyond "
                                                   "localhost needs [web] token)")
    p.add_argument("--port", type=PORT, default=8090, metavar="N", help=f"page port ({PORT.range}; 0 = any free) [8090]")


def _params(cfg, args):
    """``[mqtt]`` of the config with the flags applied (enabled: this is the dashboard)."""
    import argparse
    import dataclasses

    from ..exc import ConfigError
    from ..rig import MqttParams

    base = cfg.mqtt if cfg.mqtt is not None else MqttParams()
    changes = {"enabled": True, "camera": "dashboard"}
    if args.broker:
        host, sep, port = args.broker.rpartition(":") if args.broker.count(":") == 1 else (args.broker, "", "")
        changes["host"] = host if sep else args.broker
        if sep:
            try:
                changes["port"] = BROKER_PORT(port)
            except argparse.ArgumentTypeError as e:
                raise ConfigError(f"--broker {args.broker!r}: the port must be {BROKER_PORT.range}, e.g. "
                                  "broker.local:1883") from e
    if args.rig:
        changes["rig"] = args.rig
    try:
        return dataclasses.replace(base, **changes)
    except ConfigError as e:
        raise ConfigError(f"command line: {e}") from e


def run(args, console) -> int:
    """Serve the dashboard until Ctrl-C / SIGTERM; returns 0."""
    import signal
    import threading

    from . import _common
    from ..rig.dashboard import RigDashboard
    from ..rig.view import RigView

    cfg = _common.load_config(args)
    params = _params(cfg, args)
    web = cfg.web
    host = args.host or (web.host if web is not None else "127.0.0.1")
    token = web.token if web is not None else None
    view = RigView(params)
    dash = RigDashboard(view, host, args.port, token)  # the page's address and token rule first
    view.start()
    dash.start()
    stop = threading.Event()
    old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    console.result({"url": dash.url, "rig": params.rig, "broker": f"{params.host}:{params.port}"},
                   f"pifocus rig: {dash.url} (rig {params.rig!r}, broker {params.host}:{params.port}); Ctrl-C stops")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for s, fn in old.items():
            signal.signal(s, fn)
        dash.stop()
        view.stop()
    console.note("pifocus rig: stopped")
    return 0
