#!/usr/bin/env python3
"""Soak test of ``pifocus serve`` on the ``sim`` source: memory, threads and file descriptors.

Starts the daemon as a subprocess (mock GPIO pins, a private NOTIFY_SOCKET that this script
reads), keeps preview clients attached, churns extra clients, polls ``/api/status`` and pokes
the controls (ROI, nudge, capture, peaking, autofocus) for the given time, sampling the
daemon's RSS (``VmRSS``), thread count and open file descriptors from ``/proc``.  The
baseline is taken after a warm-up; the result is printed as a table and one JSON line.

    python tools/soak.py                 # 30 minutes (the target in issue 5)
    python tools/soak.py --minutes 5     # a shorter run
    python tools/soak.py --minutes 1 --clients 3 --size 1332x990

Exit status 0 when RSS grew < 5 MB and threads and fds did not grow, 1 otherwise.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """\
[source]
name = "sim"
width = {w}
height = {h}
realtime = true
fps = {fps}

[analysis]
use_cnn = {cnn}

[drive]
name = "sim"
state_file = "{state}"

[web]
port = {port}
captures_dir = "{captures}"
max_clients = 8
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stats(pid: int) -> dict:
    """RSS (kB), threads and open fds of a process, from /proc."""
    st = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "Threads"):
            st[k] = int(v.split()[0])
    return {"rss_kb": st["VmRSS"], "threads": st["Threads"], "fds": len(os.listdir(f"/proc/{pid}/fd"))}


class StreamClient(threading.Thread):
    """Reads the MJPEG stream until stopped; counts bytes."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.bytes, self.stop = url, 0, threading.Event()

    def run(self):
        """Stream until stopped, reconnecting when the stream ends."""
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url + "stream.mjpg", timeout=10) as r:
                    while not self.stop.is_set():
                        chunk = r.read1(65536)
                        if not chunk:
                            break
                        self.bytes += len(chunk)
            except OSError:
                time.sleep(0.5)


def post(url: str, path: str, body: dict) -> int:
    """POST a JSON body; returns the HTTP status."""
    req = urllib.request.Request(url + path.lstrip("/"), data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def main(argv=None) -> int:
    """Run the soak; returns 0 when the targets are met."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="soak duration [30]")
    ap.add_argument("--warmup", type=float, default=None, metavar="S",
                    help="seconds before the baseline sample [10%% of the run, 20..120 s]")
    ap.add_argument("--interval", type=float, default=10.0, metavar="S", help="seconds between samples [10]")
    ap.add_argument("--clients", type=int, default=1, help="preview streams kept open [1]")
    ap.add_argument("--size", default="640x480", help="sim frame size WxH [640x480]")
    ap.add_argument("--fps", type=float, default=30.0, help="sim frame rate [30]")
    ap.add_argument("--cnn", action="store_true", help="use the CNN (needs the shipped model)")
    ap.add_argument("--json", action="store_true", help="only the JSON summary on stdout")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    duration = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(120.0, max(20.0, 0.1 * duration))

    def say(text):
        if not args.json:
            print(text, flush=True)

    work = Path(tempfile.mkdtemp(prefix="pifocus-soak-"))
    port = free_port()
    cfg = work / "pifocus.toml"
    cfg.write_text(CONFIG.format(w=w, h=h, fps=args.fps, cnn=str(args.cnn).lower(), port=port,
                                 state=work / "drive.json", captures=work / "captures"))
    nsock_path = str(work / "notify.sock")
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind(nsock_path)
    nsock.settimeout(0.5)
    notes = {"READY": 0, "WATCHDOG": 0}

    def listen():
        while True:
            try:
                data = nsock.recv(4096).decode()
            except socket.timeout:
                continue
            except OSError:
                return
            for line in data.split("\n"):
                k = line.split("=")[0]
                if k in notes:
                    notes[k] += 1
    threading.Thread(target=listen, daemon=True).start()

    env = dict(os.environ, NOTIFY_SOCKET=nsock_path, WATCHDOG_USEC="10000000", GPIOZERO_PIN_FACTORY="mock",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("WATCHDOG_PID", None)
    log = open(work / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from pifocus.cli import main; sys.exit(main())",
                             "serve", "--config", str(cfg)], cwd=work, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    say(f"soak: pid {proc.pid}, {args.size} sim at {args.fps:g} fps, {args.clients} client(s), "
        f"{args.minutes:g} min (baseline after {warmup:.0f} s); work dir {work}")
    try:
        deadline = time.monotonic() + 60
        while notes["READY"] == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not become ready; see {work / 'serve.log'}")
            time.sleep(0.1)
        clients = [StreamClient(url) for _ in range(args.clients)]
        for c in clients:
            c.start()
        t0 = time.monotonic()
        samples = []
        base = None
        cycle = 0
        say(f"{'t_s':>7} {'rss_MB':>8} {'threads':>7} {'fds':>5} {'fps':>6} {'frames':>8} {'viewers':>7}")
        while True:
            now = time.monotonic() - t0
            # poke the controls between samples
            cycle += 1
            post(url, "/api/roi", {"roi": [0.1 + 0.05 * (cycle % 5), 0.2, 0.4, 0.4]})
            post(url, "/api/nudge", {"steps": 10 if cycle % 2 else -10})
            post(url, "/api/mode", {"peaking": bool(cycle % 2)})
            # every control path runs in the first cycle, before the baseline sample
            if cycle % 6 == 1:
                post(url, "/api/capture", {"format": "jpg"})
                for f in (work / "captures").glob("*"):
                    f.unlink()
            if cycle % 9 == 1:
                post(url, "/api/autofocus", {})
            churn = StreamClient(url)
            churn.start()
            time.sleep(1.0)
            churn.stop.set()
            churn.join(5)
            time.sleep(max(0.5, args.interval - 1.0))
            with urllib.request.urlopen(url + "api/status", timeout=10) as r:
                st = json.load(r)
            time.sleep(0.3)  # let the churned client's handler finish
            s = dict(proc_stats(proc.pid), t=round(time.monotonic() - t0, 1), fps=st["fps"], frames=st["frames"],
                     clients=st["clients"])
            samples.append(s)
            if base is None and s["t"] >= warmup:
                base = s
            say(f"{s['t']:7.0f} {s['rss_kb'] / 1024:8.1f} {s['threads']:7d} {s['fds']:5d} {s['fps']:6.1f} "
                f"{s['frames']:8d} {s['clients']:7d}")
            if proc.poll() is not None:
                raise SystemExit(f"serve died (status {proc.returncode}); see {work / 'serve.log'}")
            if now >= duration:
                break
        for c in clients:
            c.stop.set()
        end = samples[-1]
        base = base or samples[0]
        first = samples[0]
        t_stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(10)
        stop_s = time.monotonic() - t_stop
        result = {
            "minutes": round(end["t"] / 60, 2), "size": args.size, "fps_sim": args.fps, "clients": args.clients,
            "rss_start_mb": round(first["rss_kb"] / 1024, 2), "rss_base_mb": round(base["rss_kb"] / 1024, 2),
            "rss_end_mb": round(end["rss_kb"] / 1024, 2),
            "rss_growth_mb": round((end["rss_kb"] - base["rss_kb"]) / 1024, 2),
            "rss_max_mb": round(max(s["rss_kb"] for s in samples) / 1024, 2),
            "threads_base": base["threads"], "threads_end": end["threads"],
            "threads_growth": end["threads"] - base["threads"],
            "fds_base": base["fds"], "fds_end": end["fds"], "fds_growth": end["fds"] - base["fds"],
            "pipeline_fps_end": end["fps"], "frames": end["frames"], "watchdog_pings": notes["WATCHDOG"],
            "stop_s": round(stop_s, 2), "exit_status": rc,
        }
        ok = result["rss_growth_mb"] < 5 and result["threads_growth"] <= 0 and result["fds_growth"] <= 0 and rc == 0
        result["pass"] = ok
        if not args.json:
            print(f"RSS {result['rss_base_mb']} -> {result['rss_end_mb']} MB (growth {result['rss_growth_mb']} MB, "
                  f"target < 5), threads {result['threads_base']} -> {result['threads_end']}, "
                  f"fds {result['fds_base']} -> {result['fds_end']}; stopped in {result['stop_s']} s, "
                  f"status {rc}: {'PASS' if ok else 'FAIL'}")
        print(json.dumps(result))
        return 0 if ok else 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        nsock.close()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
