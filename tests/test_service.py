"""The ``serve`` daemon: sd_notify, watchdog, signals, reload, camera-loss recovery.

Runs against the ``sim`` source (small, realtime) with gpiozero's mock pins.  A test binds
its own ``NOTIFY_SOCKET`` and reads what the daemon tells "systemd".
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pifocus import config as cfgmod
from pifocus.exc import SourceDisconnected, SourceError
from pifocus.frames import Frame
from pifocus.pipeline import ReconnectParams
from pifocus.service import SdNotifier, Service, WatchedSource
from pifocus.sources import FrameSource
from pifocus.sources.simulated import SimulatedSource

ROOT = Path(__file__).resolve().parents[1]

SIM_TOML = """\
[source]
name = "sim"
width = 320
height = 240
realtime = true
fps = 30

[analysis]
use_cnn = false
rows = {rows}

[web]
port = 0
"""


class NotifyListener:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            for line in data.decode().split("\n"):
                self.messages.append((time.monotonic(), line))

    def lines(self, prefix: str):
        return [(t, m) for t, m in list(self.messages) if m.startswith(prefix)]

    def wait_for(self, prefix: str, timeout: float, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.lines(prefix)) >= count:
                return True
            time.sleep(0.02)
        return False

    def close(self):
        self._stop.set()
        self._t.join(1)
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    path = str(tmp_path / "notify.sock")
    lst = NotifyListener(path)
    yield path, lst
    lst.close()


# -- SdNotifier ----------------------------------------------------------------------------------
def test_notifier_path_socket(notify):
    path, lst = notify
    n = SdNotifier(path, watchdog_usec=2_000_000)
    assert n.enabled and n.watchdog_interval_s == 2.0
    assert n.notify("READY=1", "STATUS=hello\nworld")
    assert lst.wait_for("STATUS=", 2)
    assert ("READY=1" in [m for _, m in lst.messages])
    assert lst.lines("STATUS=")[0][1] == "STATUS=hello world"  # one field per line
    n.close()


def test_notifier_abstract_socket():
    name = f"pifocus-test-{os.getpid()}-{time.monotonic_ns()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(2)
    try:
        n = SdNotifier("@" + name)
        assert n.notify("WATCHDOG=1")
        assert s.recv(100) == b"WATCHDOG=1"
    finally:
        s.close()


def test_notifier_without_socket_is_a_noop(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    n = SdNotifier()
    assert not n.enabled and n.watchdog_interval_s is None
    assert n.notify("READY=1") is False


def test_notifier_watchdog_env(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert SdNotifier("/nonexistent").watchdog_interval_s == 3.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert SdNotifier("/nonexistent").watchdog_interval_s is None


def test_notifier_dead_socket_never_raises(tmp_path):
    n = SdNotifier(str(tmp_path / "nobody-listens"))
    assert n.notify("READY=1") is False
    assert n.notify("READY=1") is False


# -- the daemon as a subprocess: READY / WATCHDOG / STATUS, SIGHUP, SIGTERM -------------------------
def _spawn(tmp_path, notify_path, cfg_path, extra_env=None):
    env = dict(os.environ)
    env.update({"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "1000000", "GPIOZERO_PIN_FACTORY": "mock",
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""), "JOURNAL_STREAM": "8:1"})
    env.pop("WATCHDOG_PID", None)
    env.update(extra_env or {})
    cmd = [sys.executable, "-c", "import sys; from pifocus.cli import main; sys.exit(main())",
           "serve", "--config", str(cfg_path), "-v"]
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_daemon_notify_reload_and_sigterm(tmp_path, notify):
    notify_path, lst = notify
    cfg = tmp_path / "pifocus.toml"
    cfg.write_text(SIM_TOML.format(rows=6))
    proc = _spawn(tmp_path, notify_path, cfg)
    try:
        assert lst.wait_for("READY=1", 20), f"no READY=1; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        # Watchdog pings at half of WATCHDOG_USEC (1 s -> every 0.5 s) while frames flow.
        assert lst.wait_for("WATCHDOG=1", 6, count=5)
        pings = [t for t, _ in lst.lines("WATCHDOG=1")]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert 0.4 < min(gaps) and max(gaps) < 1.0, gaps
        assert lst.wait_for("STATUS=", 5)
        status = lst.lines("STATUS=")[-1][1]
        assert "fps" in status and ("focus" in status or "no detail" in status), status

        # SIGHUP with a good new config: reloaded (RELOADING=1 then READY=1 again).
        cfg.write_text(SIM_TOML.format(rows=4))
        n_ready = len(lst.lines("READY=1"))
        proc.send_signal(signal.SIGHUP)
        assert lst.wait_for("RELOADING=1", 5)
        assert lst.wait_for("READY=1", 5, count=n_ready + 1)

        # SIGHUP with a broken config: logged, old config kept, still running and pinging.
        cfg.write_text("[analysis]\nrows = 'many'\n")
        proc.send_signal(signal.SIGHUP)
        assert lst.wait_for("STATUS=reload failed", 5)
        time.sleep(0.5)
        assert proc.poll() is None
        n_pings = len(lst.lines("WATCHDOG=1"))
        assert lst.wait_for("WATCHDOG=1", 3, count=n_pings + 2)

        # SIGTERM: stops within 2 s, exit status 0, STOPPING=1 sent.
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(5)
        elapsed = time.monotonic() - t0
        out, err = proc.communicate()
        assert rc == 0, err
        assert elapsed < 2.0, elapsed
        assert lst.lines("STOPPING=1")
        # journald priority prefixes on stderr (JOURNAL_STREAM is set)
        assert "<6>pifocus.service: first frame analysed" in err
        assert "<3>pifocus.service: reload failed" in err
        assert "config reloaded" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_daemon_bad_config_exits_with_one_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[web]\nhost = '0.0.0.0'\n")  # exposed without a token: refused
    env = dict(os.environ, PYTHONPATH=str(ROOT), GPIOZERO_PIN_FACTORY="mock")
    r = subprocess.run([sys.executable, "-c", "import sys; from pifocus.cli import main; sys.exit(main())",
                        "serve", "--config", str(cfg)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("pifocus: error:") and "web.token" in r.stderr
    assert "Traceback" not in r.stderr


# -- in-process: SIGTERM with the LED, drive and position ------------------------------------------------
def _cfg(tmp_path, rows=6, extra=""):
    p = tmp_path / "pifocus.toml"
    p.write_text(SIM_TOML.format(rows=rows) + extra)
    return cfgmod.load(p)


def _led(svc):
    from pifocus.outputs import FocusLED
    return svc.pipeline.outputs.find(FocusLED)


def test_sigterm_in_process_led_off_drive_saved(tmp_path, monkeypatch, notify):
    notify_path, lst = notify
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "drive-state.json"
    cfg = _cfg(tmp_path, extra=f'\n[drive]\nname = "sim"\nstate_file = "{state}"\n')
    svc = Service(cfg, notifier=SdNotifier(notify_path, watchdog_usec=1_000_000))
    result = {}

    def kill_later():
        assert svc.wait_ready(20)
        svc.nudge(37)
        led = _led(svc)
        result["led"] = led
        result["pin"] = led.led.pin
        time.sleep(0.5)
        result["t0"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=kill_later)
    t.start()
    rc = svc.run()  # main thread: installs the signal handlers
    elapsed = time.monotonic() - result["t0"]
    t.join()
    assert rc == 0
    assert elapsed < 2.0
    assert result["led"].closed
    states = [s.state for s in result["pin"].states]
    assert not states[-1], "LED must end off"
    assert svc.drive is None  # closed (de-energized)
    import json
    saved = json.loads(state.read_text())
    assert saved["position"] == 37 and not saved["moving"], saved
    assert lst.lines("STOPPING=1")
    # the old signal handlers are back
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_reload_in_process_swaps_analyzer_and_keeps_old_on_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(tmp_path, rows=6)
    svc = Service(cfg, notifier=SdNotifier(""), web_enabled=False)
    svc.start()
    try:
        assert svc.wait_ready(20)
        assert svc.pipeline.last_report.rows == 6
        (tmp_path / "pifocus.toml").write_text(SIM_TOML.format(rows=3))
        assert svc.reload()
        time.sleep(0.3)
        assert svc.pipeline.last_report.rows == 3
        (tmp_path / "pifocus.toml").write_text("[analysis]\nrowz = 4\n")
        assert not svc.reload()
        assert "rowz" in svc.reload_error and "did you mean 'rows'" in svc.reload_error
        time.sleep(0.3)
        assert svc.pipeline.last_report.rows == 3
        assert svc.status()["errors"]
    finally:
        svc.shutdown()


# -- camera loss ------------------------------------------------------------------------------------------
class FlakySource(FrameSource):
    """Sim frames; after ``fail_after`` frames the camera 'unplugs': reads raise
    SourceDisconnected and the next ``bad_opens`` reopen attempts fail."""

    def __init__(self, fail_after=15, bad_opens=3):
        super().__init__()
        self.name = "flaky"
        self.sim = SimulatedSource(width=320, height=240, realtime=True, fps=30)
        self.fail_after = fail_after
        self.bad_opens = bad_opens
        self.opens = 0
        self.unplugged = False
        self.reads = 0

    def _open(self):
        self.opens += 1
        if self.unplugged:
            if self.bad_opens > 0:
                self.bad_opens -= 1
                raise SourceError("no camera")
            self.unplugged = False
        self.sim.open()

    def _read(self):
        self.reads += 1
        if self.reads == self.fail_after:
            self.unplugged = True
        if self.unplugged:
            raise SourceDisconnected("camera unplugged")
        return self.sim.read()

    def _close(self):
        self.sim.close()


def test_camera_loss_error_pattern_backoff_and_resume(tmp_path, monkeypatch, notify):
    notify_path, lst = notify
    monkeypatch.chdir(tmp_path)
    src = FlakySource(fail_after=15, bad_opens=3)
    svc = Service(_cfg(tmp_path), source=src, web_enabled=False, status_interval_s=0.2,
                  notifier=SdNotifier(notify_path, watchdog_usec=400_000),
                  reconnect=ReconnectParams(initial_s=0.1, max_s=0.4, factor=2.0))
    svc.start()
    try:
        assert svc.wait_ready(20)
        led = _led(svc)
        deadline = time.monotonic() + 10
        seen_error = False
        while time.monotonic() < deadline:
            if svc.pipeline.error:
                seen_error = True
                assert led.error  # the LED shows the error pattern
                assert svc.status()["error"].startswith("source lost")
                break
            time.sleep(0.01)
        assert seen_error
        # still pinging the watchdog while reopening (healthy backoff, not a hang)
        n = len(lst.lines("WATCHDOG=1"))
        assert lst.wait_for("WATCHDOG=1", 2, count=n + 2)
        assert lst.wait_for("STATUS=source lost", 3)
        # comes back by itself
        frames = svc.pipeline.frames
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (svc.pipeline.error is None and svc.pipeline.frames > frames + 10):
            time.sleep(0.05)
        assert svc.pipeline.error is None
        assert svc.pipeline.reconnects == 1
        assert src.opens >= 5  # first open + 3 failed + 1 good
        assert not led.error
        assert not svc.stopping
        # the LED blinked while in error (several on/off transitions on the mock pin)
        values = [bool(s.state) for s in led.led.pin.states]
        assert sum(1 for a, b in zip(values, values[1:]) if a != b) >= 2
    finally:
        svc.shutdown()


class StallingSource(FrameSource):
    """Sim frames until ``stall`` is set; then read() blocks (a hung camera driver)."""

    def __init__(self):
        super().__init__()
        self.name = "stalling"
        self.sim = SimulatedSource(width=320, height=240, realtime=True, fps=30)
        self.stall = threading.Event()
        self.release = threading.Event()

    def _open(self):
        self.sim.open()

    def _read(self):
        if self.stall.is_set():
            self.release.wait(30)
        return self.sim.read()


def test_stalled_camera_stops_watchdog_pings(tmp_path, monkeypatch, notify):
    notify_path, lst = notify
    monkeypatch.chdir(tmp_path)
    src = StallingSource()
    svc = Service(_cfg(tmp_path), source=src, web_enabled=False,
                  notifier=SdNotifier(notify_path, watchdog_usec=400_000))
    svc.start()
    try:
        assert svc.wait_ready(20)
        assert lst.wait_for("WATCHDOG=1", 3, count=3)
        src.stall.set()
        time.sleep(0.3)
        n = len(lst.lines("WATCHDOG=1"))
        time.sleep(1.2)  # three watchdog intervals: systemd would restart us
        assert len(lst.lines("WATCHDOG=1")) == n
    finally:
        src.release.set()
        svc.shutdown()


def test_gives_up_when_camera_never_returns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = FlakySource(fail_after=5, bad_opens=100)
    svc = Service(_cfg(tmp_path), source=src, web_enabled=False, notifier=SdNotifier(""),
                  reconnect=ReconnectParams(initial_s=0.05, max_s=0.05, max_attempts=3))
    with pytest.raises(SourceError, match="did not come back"):
        svc.run(install_signals=False)
    assert svc.exit_code == 1


def test_watched_source_records_reads_and_delegates():
    sim = SimulatedSource(width=128, height=96)
    seen = []
    w = WatchedSource(sim, on_read=seen.append)
    w.open()
    f = w.read()
    assert isinstance(f, Frame) and seen == [f] and w.last_read > 0
    w.lens_position = 300  # reaches the real source
    assert sim.lens_position == 300
    assert w.name == "sim"
    w.close()
    assert sim.closed


def test_missing_model_falls_back_to_laplacian(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "pifocus.toml"
    p.write_text(SIM_TOML.format(rows=6).replace("use_cnn = false",
                                                 f'use_cnn = true\nmodel = "{tmp_path / "missing.tflite"}"'))
    svc = Service(cfgmod.load(p), notifier=SdNotifier(""), web_enabled=False, outputs_enabled=False)
    svc.start()
    try:
        assert svc.wait_ready(20)
        assert svc.pipeline.analyzer.mode == "laplacian"
        assert any("Laplacian-only" in e for e in svc.status()["errors"])
    finally:
        svc.shutdown()


def test_serve_flags_override_web(tmp_path):
    import argparse

    from pifocus.cli import build_parser
    from pifocus.commands import serve as serve_cmd
    from pifocus.exc import ConfigError

    parser, modules = build_parser()
    assert "serve" in modules
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text("[web]\nport = 9000\n")
    args = parser.parse_args(["serve", "--config", str(cfg_path), "--port", "0", "--no-web"])
    from pifocus.commands import _common
    cfg = serve_cmd._apply_web_flags(_common.load_config(args), args)
    assert cfg.web.port == 0 and cfg.web.enabled is False
    args = parser.parse_args(["serve", "--host", "0.0.0.0"])
    with pytest.raises(ConfigError, match="command line: .*web.token"):
        serve_cmd._apply_web_flags(_common.load_config(args), args)
    ns = argparse.Namespace(host=None, port=None, no_web=False)
    assert serve_cmd._apply_web_flags(cfg, ns) is cfg


@pytest.mark.slow
def test_daemon_sigint_stops_like_sigterm(tmp_path, notify):
    notify_path, lst = notify
    cfg = tmp_path / "pifocus.toml"
    cfg.write_text(SIM_TOML.format(rows=6))
    proc = _spawn(tmp_path, notify_path, cfg)
    try:
        assert lst.wait_for("READY=1", 20)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(5)
        assert rc == 0 and time.monotonic() - t0 < 2.0
        assert "stopped after" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
