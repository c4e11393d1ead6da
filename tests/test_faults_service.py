"""Issue 14: ``Service.shutdown`` waits for a nudge running in an HTTP thread before it
closes the drive, and never saves a position the lens has not reached."""

import json
import threading
import time

from pifocus.service import SdNotifier, Service

from test_service import _cfg


def _service(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "drive-state.json"
    cfg = _cfg(tmp_path, extra=f'\n[drive]\nname = "sim"\nstate_file = "{state}"\n')
    svc = Service(cfg, notifier=SdNotifier(""), web_enabled=False)
    svc.start()
    assert svc.wait_ready(20)
    return svc, state


def _slow_nudge(svc, seconds):
    moving = threading.Event()

    def slow(*_):
        moving.set()
        time.sleep(seconds)
    svc.drive.on_moving = slow
    t = threading.Thread(target=lambda: svc.nudge(25), daemon=True)
    t.start()
    assert moving.wait(5)
    return t


def test_shutdown_waits_for_a_nudge_in_flight(tmp_path, monkeypatch):
    svc, state = _service(tmp_path, monkeypatch)
    start = svc.drive.position
    t = _slow_nudge(svc, 0.6)
    svc.shutdown(timeout=1.5)
    assert not t.is_alive()                      # closed only after the move ended
    saved = json.loads(state.read_text())
    assert saved["position"] == start + 25 and saved["moving"] is False


def test_shutdown_abandoning_a_nudge_leaves_the_position_uncertain(tmp_path, monkeypatch):
    svc, state = _service(tmp_path, monkeypatch)
    t = _slow_nudge(svc, 2.5)
    svc.shutdown(timeout=0.5)
    saved = json.loads(state.read_text())
    assert saved["moving"] is True, saved        # the write-ahead record of the nudge
    t.join(5)                                    # the move ends after close(): still not "settled"
    saved = json.loads(state.read_text())
    assert saved["moving"] is True, saved
