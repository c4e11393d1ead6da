#!/usr/bin/env python3
"""Rig benchmark: N simulated cameras (``pifocus serve --source sim``, different seeds and lens
offsets) on one Mosquitto, MQTT off vs on, plus the rig checks at that scale.

N cameras with the MQTT bridge on and N with it off run *at the same time*, so whatever
else loads the machine hits both alike.  Prints (medians over the measuring windows):

* frame-loop fps per camera with MQTT off and on, and the ratio on/off (target >= 0.97);
* CPU per camera process (% of one core) off and on, and the broker's CPU;
* MQTT message rate and bytes/s seen by a dashboard subscriber, per camera and in all;
* with ``--checks``: "focus all" (every camera within its depth of focus, replies from all)
  and a broker SIGKILL + restart (reconnect time of every camera; nudges sent before,
  during and after each run exactly once).

The cameras are paced at ``--fps`` like real ones (``--unpaced``: as fast as the CPU
allows); CPU per frame is the load-independent cost.  Example (what the closing note quotes)::

    python tools/rig_bench.py --cameras 8 --seconds 10 --rounds 3 --checks
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from mqtt_broker import Broker, free_port  # noqa: E402  (the tests' broker helper)

TOML = """\
[source]
name = "sim"
width = {w}
height = {h}
realtime = {realtime}
fps = {fps}
seed = {seed}
focus_position = {focus}
[drive]
name = "sim"
state_file = "{state}"
[web]
port = {web_port}
captures_dir = "{captures}"
[mqtt]
enabled = {mqtt}
port = {port}
rig = "bench"
camera = "cam{i}"
state_min_interval_s = 0.5
state_max_interval_s = 10.0
thumbnail_interval_s = 5.0
reconnect_min_s = 0.25
reconnect_max_s = 4.0
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status(port: int) -> dict:
    """``/api/status`` of the camera whose page is on ``port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as r:
        return json.loads(r.read())


class Camera:
    """One ``pifocus serve`` process."""

    def __init__(self, folder: Path, i: int, args, broker_port: int):
        self.i, self.folder = i, folder
        self.focus = 300.0 + (i * 53) % 400
        self.web_port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.args, self.broker_port = args, broker_port
        self.proc = None

    def start(self, mqtt: bool) -> None:
        w, h = self.args.size.split("x")
        cfg = self.folder / f"pifocus-{'on' if mqtt else 'off'}.toml"
        cfg.write_text(TOML.format(w=w, h=h, realtime="true" if self.args.realtime else "false", fps=self.args.fps,
                                   seed=self.i, focus=self.focus, state=self.folder / "drive.json",
                                   web_port=self.web_port, captures=self.folder / "captures",
                                   mqtt="true" if mqtt else "false", port=self.broker_port, i=self.i))
        env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock", PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-m", "pifocus", "serve", "--config", str(cfg)], cwd=self.folder,
                                     env=env, stdout=subprocess.DEVNULL, stderr=open(self.folder / "serve.log", "a"))

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if status(self.web_port).get("ready"):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"camera {self.i} exited: {(self.folder / 'serve.log').read_text()[-1500:]}")
            time.sleep(0.2)
        raise SystemExit(f"camera {self.i} not ready in {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                print(f"camera {self.i} did not stop on SIGTERM within 10 s; killed", flush=True)
                self.proc.kill()
                self.proc.wait(5)


def measure(cams, seconds: float, broker=None, view=None) -> dict:
    """fps (frames/elapsed from /api/status), CPU (% of a core) and CPU ms per frame of every
    camera, the broker's CPU and the dashboard's message rate over ``seconds``."""
    t0 = time.monotonic()
    f0 = [status(c.web_port)["frames"] for c in cams]
    c0 = [cpu_s(c.proc.pid) for c in cams]
    b0 = cpu_s(broker.proc.pid) if broker else 0.0
    m0 = view_counts(view)
    time.sleep(seconds)
    dt = time.monotonic() - t0
    f1 = [status(c.web_port)["frames"] for c in cams]
    c1 = [cpu_s(c.proc.pid) for c in cams]
    m1 = view_counts(view)
    return {"fps": [(b - a) / dt for a, b in zip(f0, f1)], "cpu": [100 * (b - a) / dt for a, b in zip(c0, c1)],
            "cpu_ms": [1e3 * (d - c) / max(1, b - a) for a, b, c, d in zip(f0, f1, c0, c1)],
            "broker_cpu": 100 * (cpu_s(broker.proc.pid) - b0) / dt if broker else None,
            "msgs_per_s": (m1[0] - m0[0]) / dt, "bytes_per_s": (m1[1] - m0[1]) / dt}


_COUNTS = [0, 0]
#: topic kind (state, thumb, event, reply, cmd) -> [messages, bytes] seen by the dashboard.
_KINDS: dict = {}


def view_counts(view):
    return tuple(_COUNTS) if view is not None else (0, 0)


def make_view(port: int):
    """A dashboard (:class:`RigView`) that also counts every message it receives."""
    from pifocus.rig import MqttParams
    from pifocus.rig.view import RigView

    view = RigView(MqttParams(enabled=True, port=port, rig="bench", camera="dashboard",
                              reconnect_min_s=0.25, reconnect_max_s=4.0))
    inner = view.client._on_message_cb

    def counting(topic, payload, retain):
        _COUNTS[0] += 1
        _COUNTS[1] += len(payload) + len(topic)
        kind = _KINDS.setdefault(topic.split("/")[3] if topic.count("/") >= 3 else "?", [0, 0])
        kind[0] += 1
        kind[1] += len(payload) + len(topic)
        inner(topic, payload, retain)
    view.client._on_message_cb = counting
    return view.start(wait_s=5)


def checks(cams, broker, view) -> None:
    """Focus all at this scale, then a broker kill/restart with nudges around it."""
    from pifocus.sources.simulated import SimParams, blur_radius_px

    names = {f"cam{c.i}": c for c in cams}
    deadline = time.monotonic() + 30
    while sorted(view.online()) != sorted(names) and time.monotonic() < deadline:
        time.sleep(0.2)
    t0 = time.monotonic()
    cid = view.send("autofocus")
    replies = view.wait(cid, timeout=120)
    dt = time.monotonic() - t0
    bad = []
    for name, c in names.items():
        r = replies.get(name)
        final = r and r.get("ok") and r["result"]["result"]["final_position"]
        blur = blur_radius_px(final, SimParams(focus_position=c.focus)) if final is not False and final is not None else None
        if blur is None or blur > 1.0:
            bad.append((name, final, c.focus, blur))
    print(f"focus all: {len(replies)}/{len(names)} replies in {dt:.1f} s; outside depth of focus: {bad or 'none'}")
    start = {n: view.wait(view.send("nudge", {"steps": 10}, n), 15)[n]["result"]["position"] for n in names}
    before = {n: view.cameras[n]["state"]["mqtt"]["connects"] for n in names}
    steps = [3, -2, 5, 4]
    sent = [view.send("nudge", {"steps": steps[0]})]
    broker.kill()
    sent.append(view.send("nudge", {"steps": steps[1]}))
    time.sleep(2.0)
    broker.start()
    t_up = time.monotonic()
    back = {}
    while len(back) < len(names) and time.monotonic() - t_up < 30:
        for n in names:
            st = view.cameras[n]["state"] or {}
            if n not in back and (st.get("mqtt") or {}).get("connects", 0) > before[n]:
                back[n] = time.monotonic() - t_up
        time.sleep(0.05)
    sent += [view.send("nudge", {"steps": s}) for s in steps[2:]]
    answered = [view.wait(c, timeout=30, retry_s=1.0) for c in sent]
    lost = sum(len(names) - len(a) for a in answered)
    wrong = []
    for n in names:
        pos = view.wait(view.send("nudge", {"steps": 1}, n), 15)[n]["result"]["position"]
        if abs(pos - (start[n] + sum(steps) + 1)) > 1e-6:
            wrong.append((n, start[n], pos))
    recon = sorted(back.values())
    print(f"broker restart: {len(back)}/{len(names)} reconnected, after {min(recon):.2f}..{max(recon):.2f} s "
          f"(median {statistics.median(recon):.2f} s); replies missing: {lost}; "
          f"run twice or lost (position off): {wrong or 'none'}; "
          f"commands sent again: {sum(view.commands[c]['sends'] - 1 for c in sent)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=8, help="cameras with MQTT on (as many run with it off)")
    ap.add_argument("--seconds", type=float, default=10.0, help="one measuring window")
    ap.add_argument("--rounds", type=int, default=3, help="measuring windows")
    ap.add_argument("--size", default="480x360", help="sim frame size WxH")
    ap.add_argument("--fps", type=float, default=10.0, help="camera frame rate (paced like a camera)")
    ap.add_argument("--unpaced", dest="realtime", action="store_false",
                    help="run the sim as fast as the CPU allows instead of at --fps")
    ap.add_argument("--checks", action="store_true", help="also run focus-all and the broker restart")
    ap.add_argument("--out", default=None, help="scratch folder [a temporary one]")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="rig_bench-"))
    broker = Broker(out / "broker").start()
    n = args.cameras
    on = [Camera(out / f"cam{i}", i, args, broker.port) for i in range(1, n + 1)]
    off = [Camera(out / f"off{i}", 100 + i, args, broker.port) for i in range(1, n + 1)]
    view = make_view(broker.port)
    rounds = []
    try:
        for c in on + off:
            c.start(c in on)
        for c in on + off:
            c.wait_ready()
        time.sleep(3.0)  # past start-up (model load, first states and thumbnails)
        for k in range(args.rounds):
            r = measure(on + off, args.seconds, broker, view)
            r = {"on": {key: r[key][:n] for key in ("fps", "cpu", "cpu_ms")},
                 "off": {key: r[key][n:] for key in ("fps", "cpu", "cpu_ms")},
                 "broker_cpu": r["broker_cpu"], "msgs_per_s": r["msgs_per_s"], "bytes_per_s": r["bytes_per_s"]}
            rounds.append(r)
            print(f"window {k + 1}: fps median on {statistics.median(r['on']['fps']):.2f} / off "
                  f"{statistics.median(r['off']['fps']):.2f}; CPU/camera on {statistics.median(r['on']['cpu']):.1f} % / "
                  f"off {statistics.median(r['off']['cpu']):.1f} %; broker {r['broker_cpu']:.2f} %; "
                  f"{r['msgs_per_s']:.1f} msgs/s, {r['bytes_per_s'] / 1024:.1f} KiB/s", flush=True)
        if args.checks:
            checks(on, broker, view)
    finally:
        for c in on + off:
            c.stop()
        view.stop()
        broker.stop()

    def med(side, key):
        return statistics.median(v for r in rounds for v in r[side][key])
    fps_on, fps_off = med("on", "fps"), med("off", "fps")
    msgs = statistics.median(r["msgs_per_s"] for r in rounds)
    kib = statistics.median(r["bytes_per_s"] for r in rounds) / 1024
    print(f"\n{n} cameras with MQTT on and {n} with it off at the same time, {args.size}, "
          f"{'paced at %g fps' % args.fps if args.realtime else 'unpaced'}, {args.rounds} x {args.seconds:g} s")
    print(f"frame-loop fps per camera (median): on {fps_on:.2f}, off {fps_off:.2f}; ratio on/off {fps_on / fps_off:.3f}")
    print(f"CPU per camera (% of a core): on {med('on', 'cpu'):.1f}, off {med('off', 'cpu'):.1f}; "
          f"CPU per frame: on {med('on', 'cpu_ms'):.2f} ms, off {med('off', 'cpu_ms'):.2f} ms; "
          f"broker {statistics.median(r['broker_cpu'] for r in rounds):.2f} % of a core")
    print(f"MQTT to the dashboard: {msgs:.1f} msgs/s ({msgs / n:.2f} per camera), {kib:.1f} KiB/s "
          f"({kib / n:.2f} per camera)")
    total = sum(b for _, b in _KINDS.values()) or 1
    print("by topic over the whole run: " + ", ".join(
        f"{k} {m} msgs, {b / max(1, m):.0f} B each, {100 * b / total:.0f} % of the bytes"
        for k, (m, b) in sorted(_KINDS.items(), key=lambda kv: -kv[1][1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
