"""The rig's MQTT logic on literal data (topics, payloads, token, de-duplication, state rate,
outbox, clocks, ``[mqtt]`` validation), the command runner and the synchronised-capture
frame choice, and the camera bridge against a real Mosquitto (token refused, retained
commands refused, a command id run once).  The multi-process rig is ``test_mqtt_rig.py``."""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from mqtt_broker import broker, need_broker  # noqa: F401  (the session broker fixture)
from pifocus import config as cfgmod
from pifocus.exc import ConfigError, ServiceError
from pifocus.rig import MqttParams
from pifocus.rig.topics import (OFFLINE, CommandDedup, Message, Outbox, StateLimiter, Topics, capture_delay_s,
                                check_token, command_topic, decode, encode, parse_command, parse_topic, reply_document,
                                spread_ms, state_document, state_key, wall_time_of)

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"


# -- topics and payloads ---------------------------------------------------------------------------
def test_topic_layout():
    t = Topics("studio", "pi-07")
    assert t.state == "pifocus/studio/pi-07/state"
    assert t.thumb == "pifocus/studio/pi-07/thumb"
    assert t.event("capture") == "pifocus/studio/pi-07/event/capture"
    assert t.reply("nudge") == "pifocus/studio/pi-07/reply/nudge"
    assert t.command_filters == ("pifocus/studio/pi-07/cmd/+", "pifocus/studio/all/cmd/+")
    assert command_topic("studio", "all", "autofocus") == "pifocus/studio/all/cmd/autofocus"


@pytest.mark.parametrize("topic, parsed", [
    ("pifocus/studio/pi-07/state", ("studio", "pi-07", "state", None)),
    ("pifocus/studio/pi-07/thumb", ("studio", "pi-07", "thumb", None)),
    ("pifocus/studio/all/cmd/capture", ("studio", "all", "cmd", "capture")),
    ("pifocus/studio/pi-07/reply/nudge", ("studio", "pi-07", "reply", "nudge")),
    ("pifocus/studio/pi-07/state/extra", None),
    ("pifocus/studio/pi-07/cmd/", None),
    ("other/studio/pi-07/state", None),
    ("pifocus/stu dio/pi-07/state", None),
    ("pifocus/studio", None),
])
def test_parse_topic(topic, parsed):
    assert parse_topic(topic) == parsed


def test_encode_has_no_nan_and_decode_checks():
    assert json.loads(encode({"blur_px": float("nan"), "m": [1.0, float("inf")], "v": "x"})) == \
        {"blur_px": None, "m": [1.0, None], "v": "x"}
    assert decode(b'{"id": "a"}') == {"id": "a"}
    assert decode(b"") == {}
    with pytest.raises(ServiceError, match="not UTF-8 JSON"):
        decode(b"{nope")
    with pytest.raises(ServiceError, match="JSON object"):
        decode(b"[1, 2]")
    with pytest.raises(ServiceError, match="too large"):
        decode(b"{" + b" " * 20000 + b"}")


def test_parse_command_id_token_and_arguments():
    cmd = parse_command("nudge", "all", {"id": "c1", "token": TOKEN, "steps": 5}, TOKEN)
    assert (cmd.id, cmd.name, cmd.args, cmd.target) == ("c1", "nudge", {"steps": 5}, "all")  # token removed
    with pytest.raises(ServiceError) as e:
        parse_command("fly", "all", {"id": "c1"}, None)
    assert e.value.status == 404 and "autofocus" in str(e.value)
    with pytest.raises(ServiceError, match='"id"'):
        parse_command("nudge", "all", {"steps": 5}, None)
    with pytest.raises(ServiceError, match='"id"'):
        parse_command("nudge", "all", {"id": "x" * 65}, None)
    with pytest.raises(ServiceError) as e:
        parse_command("nudge", "all", {"id": "c1", "steps": 5}, TOKEN)
    assert e.value.status == 401
    with pytest.raises(ServiceError) as e:
        parse_command("nudge", "all", {"id": "c1", "steps": 5, "token": "wrong-token"}, TOKEN)
    assert e.value.status == 403 and TOKEN not in str(e.value)
    with pytest.raises(ServiceError, match="unknown argument.*speed.*allowed: steps"):
        parse_command("nudge", "cam1", {"id": "c1", "steps": 5, "speed": 3}, None)
    check_token(None, None)  # no token configured: nothing to check


def test_reply_document():
    d = reply_document("c1", "cam1", "nudge", ok=False, status=409, error="busy", received_unix=1.5)
    assert d["id"] == "c1" and d["camera"] == "cam1" and d["status"] == 409 and d["error"] == "busy"
    assert "result" not in d and d["done_unix"] > 1e9


STATUS = {"ready": True, "fps": 29.7, "frames": 1234, "verdict": "in focus", "verdict_code": "in_focus",
          "in_focus": True, "blur_px": 0.62, "meter": 0.98, "sharpness": 812.0, "mode": "cnn",
          "exposure_us": 8000, "analogue_gain": 2.0, "error": None, "errors": [], "uptime_s": 12.0,
          "lens_position": 500.0, "drive": {"available": True, "position": 498.0, "busy": False},
          "autofocus": {"state": "done", "strategy": "model", "result": {"final_position": 498.0}},
          "tiles": {"huge": "not copied"}}


def test_state_document_from_a_status():
    d = state_document(STATUS, "cam1", {"dropped": 2})
    assert d["online"] is True and d["camera"] == "cam1"
    assert d["lens_position"] == 498.0  # the drive's, when there is one
    assert d["exposure_us"] == 8000 and d["analogue_gain"] == 2.0 and d["meter"] == 0.98
    assert d["autofocus"] == {"state": "done", "strategy": "model", "result": {"final_position": 498.0}}
    assert d["mqtt"] == {"dropped": 2} and "tiles" not in d
    no_drive = dict(STATUS, drive={"available": False, "position": None})
    assert state_document(no_drive, "cam1")["lens_position"] == 500.0  # else the frame's


def test_state_key_changes_on_what_matters_only():
    base = state_key(state_document(STATUS, "c"))
    assert state_key(state_document(dict(STATUS, fps=12.0, frames=99999, uptime_s=99.0), "c")) == base
    assert state_key(state_document(dict(STATUS, meter=0.99), "c")) == base  # < 5 %
    assert state_key(state_document(dict(STATUS, meter=0.80), "c")) != base
    assert state_key(state_document(dict(STATUS, verdict_code="near"), "c")) != base
    assert state_key(state_document(dict(STATUS, errors=["camera lost"]), "c")) != base
    assert state_key(state_document(dict(STATUS, exposure_us=4000), "c")) != base


def test_state_limiter_on_change_bounded_and_heartbeat():
    lim = StateLimiter(0.5, 10.0)
    assert lim.due("a", 0.0)
    lim.mark("a", 0.0)
    assert not lim.due("a", 0.3)           # nothing new
    assert not lim.due("b", 0.3)           # a change, but too soon
    assert lim.due("b", 0.5)               # a change, old enough
    lim.mark("b", 0.5)
    assert not lim.due("b", 10.4)
    assert lim.due("b", 10.5)              # heartbeat without a change
    lim.reset()
    assert lim.due("b", 10.6)              # after a reconnect: at once


def test_dedup_runs_an_id_once_and_remembers_the_reply():
    d = CommandDedup(size=16)
    assert d.begin("c1") == "new"
    assert d.begin("c1") == "running"
    d.finish("c1", {"ok": True})
    assert d.begin("c1") == "done" and d.reply("c1") == {"ok": True}
    assert d.duplicates == 2
    for i in range(20):
        d.begin(f"x{i}")
    assert len(d) == 16 and d.begin("c1") == "new"  # the oldest ids are forgotten


def test_outbox_drops_oldest_and_coalesces_retained_state():
    box = Outbox(3)
    for i in range(5):
        box.put(Message(f"t/{i}", b"%d" % i))
    assert box.dropped == 2 and [box.get(0).topic for _ in range(3)] == ["t/2", "t/3", "t/4"]
    assert box.get(0.01) is None
    box.put(Message("s", b"1", retain=True))
    box.put(Message("e", b"x"))
    box.put(Message("s", b"2", retain=True))
    assert box.coalesced == 1 and len(box) == 2
    assert [(m.topic, m.payload) for m in (box.get(0), box.get(0))] == [("e", b"x"), ("s", b"2")]
    full = Outbox(8)
    for i in range(8):
        full.put(Message("t", b""))
    full.unget(Message("back", b""))
    assert full.dropped == 1 and len(full) == 8


def test_clocks_for_synchronised_capture():
    mono, wall = 5_000_000_000_000, 1_800_000_000.0
    assert wall_time_of(mono - 20_000_000, mono, wall) == pytest.approx(wall - 0.02)
    assert wall_time_of(1234, mono, wall) is None          # a recording's stamp: another clock
    assert wall_time_of(0, mono, wall) is None
    assert capture_delay_s(None, 100.0) == 0.0
    assert capture_delay_s(102.5, 100.0) == pytest.approx(2.5)
    assert capture_delay_s(99.9, 100.0) == 0.0             # a hair late still counts
    with pytest.raises(ServiceError, match="in the past.*chronyc"):
        capture_delay_s(95.0, 100.0)
    with pytest.raises(ServiceError, match="ahead"):
        capture_delay_s(1000.0, 100.0)
    for bad in ("soon", True, float("nan")):
        with pytest.raises(ServiceError, match="unix time"):
            capture_delay_s(bad, 100.0)
    assert spread_ms([10.000, 10.012, None, 10.005]) == pytest.approx(12.0)
    assert spread_ms([10.0]) is None


# -- [mqtt] config ----------------------------------------------------------------------------------
def test_mqtt_params_defaults_and_validation():
    p = MqttParams()
    assert not p.enabled and p.host == "127.0.0.1" and p.port == 1883 and p.camera
    for key, bad, allowed in [("rig", "a/b", "no '/'"), ("rig", "all", "reserved"), ("camera", "c+", "no '/'"),
                              ("port", 0, "1..65535"), ("state_min_interval_s", 0.0, "0.05..60"),
                              ("queue_max", 1, "8..100000"), ("thumbnail_width", 8, "32..640")]:
        with pytest.raises(ConfigError, match=f"mqtt.{key} = .*allowed: .*{allowed}"):
            MqttParams(**{key: bad})
    with pytest.raises(ConfigError, match="mqtt.token.*not a loopback"):
        MqttParams(enabled=True, host="broker.local")
    MqttParams(enabled=True, host="broker.local", token=TOKEN)
    with pytest.raises(ConfigError, match=r"mqtt.token = '\*\*\*'.*at least 8"):
        MqttParams(token="short")
    with pytest.raises(ConfigError, match="mqtt.username"):
        MqttParams(password="pw-only")
    r = repr(MqttParams(username="u", password="hunter2-pw", token=TOKEN))
    assert "hunter2" not in r and TOKEN not in r


def test_mqtt_table_in_the_config_file():
    cfg = cfgmod.from_dict({"mqtt": {"enabled": True, "rig": "studio", "camera": "pi-01", "port": 1884}})
    assert cfg.mqtt.enabled and cfg.mqtt.rig == "studio" and cfg.mqtt.port == 1884
    assert cfgmod.default().mqtt.enabled is False
    with pytest.raises(ConfigError, match="unknown key mqtt.hots; did you mean 'host'"):
        cfgmod.from_dict({"mqtt": {"hots": "x"}})
    with pytest.raises(ConfigError) as e:
        cfgmod.from_dict({"mqtt": {"password": 12345678}})
    assert "12345678" not in str(e.value) and "***" in str(e.value)
    example = cfgmod.load(ROOT / "systemd" / "pifocus.toml")  # the documented example stays valid
    assert example.mqtt is not None and example.mqtt.enabled is False


def test_import_pifocus_without_paho_and_clear_error_when_enabled():
    code = ("import sys; sys.modules['paho'] = None; sys.modules['paho.mqtt'] = None; "
            "sys.modules['paho.mqtt.client'] = None\n"
            "import pifocus, pifocus.config, pifocus.rig, pifocus.rig.topics, pifocus.rig.bridge, pifocus.cli\n"
            "from pifocus.exc import ConfigError\n"
            "from pifocus.rig.client import paho\n"
            "try:\n    paho()\nexcept ConfigError as e:\n    print('ERR', e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    assert "ERR [mqtt] needs paho-mqtt >= 2.0" in r.stdout and "pip install 'pifocus[mqtt]'" in r.stdout


# -- commands through a Controls ---------------------------------------------------------------------
class ScriptedControls:
    """A stand-in for :class:`pifocus.controls.Controls` (the protocol, not hardware): records
    the calls, autofocus "runs" for ``af_s`` seconds."""

    hub = None

    def __init__(self, af_s=0.2):
        self.af_s, self.af_until, self.calls = af_s, 0.0, []
        self.position = 100

    def status(self):
        running = time.monotonic() < self.af_until
        return dict(STATUS, autofocus={"state": "running"} if running else
                    {"state": "done", "result": {"final_position": 321.0, "success": True}})

    def start_autofocus(self, strategy=None):
        self.calls.append(("autofocus", strategy))
        self.af_until = time.monotonic() + self.af_s
        return {"state": "running"}

    def nudge(self, steps):
        self.calls.append(("nudge", steps))
        self.position += steps
        return {"position": self.position}

    def capture(self, fmt=None, timeout=3.0, not_before_ns=None):
        self.calls.append(("capture", fmt, not_before_ns, time.time()))
        return {"file": "x.png", "width": 4, "height": 2, "frame": 7, "lens_position": 1.0, "bytes": 10,
                "timestamp_ns": time.monotonic_ns()}


def _cmd(command, **args):
    return parse_command(command, "all", dict(args, id=uuid.uuid4().hex), None)


def test_runner_autofocus_waits_for_the_run_and_emits_the_event():
    from pifocus.rig.commands import CommandRunner

    events = []
    ctl = ScriptedControls(af_s=0.3)
    runner = CommandRunner(ctl, emit=lambda n, d: events.append((n, d)))
    t0 = time.monotonic()
    ok, result = runner.run(_cmd("autofocus", strategy="sweep"))
    assert ok and time.monotonic() - t0 >= 0.29 and result["result"]["final_position"] == 321.0
    assert ctl.calls == [("autofocus", "sweep")] and events[0][0] == "autofocus"
    ok, _ = runner.run(_cmd("continuous"))  # controls without follow focus: one local pass
    assert ctl.calls[-1] == ("autofocus", "continuous")


def test_runner_continuous_switches_follow_focus():
    from pifocus.rig.commands import CommandRunner

    class WithFollow(ScriptedControls):
        def set_af_mode(self, mode):
            self.calls.append(("mode", mode))
            return mode

    ctl = WithFollow()
    assert CommandRunner(ctl).run(_cmd("continuous")) == (True, {"mode": "continuous"})
    assert CommandRunner(ctl).run(_cmd("continuous", enabled=False)) == (True, {"mode": "single"})
    assert ctl.calls == [("mode", "continuous"), ("mode", "single")]
    with pytest.raises(ServiceError, match="enabled"):
        CommandRunner(ctl).run(_cmd("continuous", enabled="yes"))


def test_runner_capture_at_a_named_time():
    from pifocus.rig.commands import CommandRunner

    ctl = ScriptedControls()
    runner = CommandRunner(ctl)
    at = time.time() + 0.4
    ok, doc = runner.run(_cmd("capture", at=at, capture_id="shot-1"))
    _, fmt, not_before_ns, called = ctl.calls[0]
    assert called >= at and doc["capture_id"] == "shot-1" and doc["requested_unix"] == at
    assert doc["clock"] == "sensor" and 0 <= doc["error_ms"] < 100
    # not_before_ns is the named time on the monotonic clock the frames are stamped with.
    assert abs((time.monotonic_ns() - not_before_ns) / 1e9 - (time.time() - at)) < 0.01
    with pytest.raises(ServiceError, match="in the past"):
        runner.run(_cmd("capture", at=time.time() - 10))


def test_runner_refusals():
    from pifocus.rig.commands import CommandRunner

    runner = CommandRunner(ScriptedControls())
    with pytest.raises(ServiceError) as e:
        runner.run(_cmd("preset", name="A"))
    assert e.value.status == 501 and "presets" in str(e.value)
    with pytest.raises(ServiceError, match="steps"):
        runner.run(_cmd("nudge"))
    with pytest.raises(ServiceError) as e:
        runner.run(_cmd("reload"))
    assert e.value.status == 503
    ok, res = CommandRunner(ScriptedControls(), reload_fn=lambda: False, reload_error=lambda: "bad toml").run(
        _cmd("reload"))
    assert not ok and res == {"reloaded": False, "error": "bad toml"}


def test_runner_preset_racks_to_the_stored_position_and_waits():
    from pifocus.rig.commands import CommandRunner

    class WithPresets(ScriptedControls):
        rack = {"state": "idle"}

        def go_preset(self, name, speed_units_s=200.0):
            self.calls.append(("preset", name, speed_units_s))
            self.rack = {"state": "moving", "name": name, "target": 250.0}
            threading.Timer(0.2, lambda: setattr(self, "rack", {"state": "done", "name": name,
                                                                   "target": 250.0})).start()
            return dict(self.rack)

        def status(self):
            return dict(super().status(), rack=dict(self.rack))

    ctl = WithPresets()
    t0 = time.monotonic()
    ok, res = CommandRunner(ctl).run(_cmd("preset", name="A", speed_units_s=150))
    assert ok and res["state"] == "done" and res["target"] == 250.0 and time.monotonic() - t0 >= 0.19
    assert ctl.calls == [("preset", "A", 150.0)]
    with pytest.raises(ServiceError, match="name"):
        CommandRunner(ctl).run(_cmd("preset", name=""))
    with pytest.raises(ServiceError, match="speed_units_s"):
        CommandRunner(ctl).run(_cmd("preset", name="A", speed_units_s="fast"))


def test_capture_queue_takes_the_first_frame_at_or_after_the_named_time():
    from pifocus.frames import Frame
    from pifocus.service.controls import CaptureQueue

    q = CaptureQueue()
    now = time.monotonic_ns()
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("f", q.next_frame(2.0, now + 50_000_000)))
    t.start()
    time.sleep(0.05)
    luma = np.zeros((2, 2), np.uint8)
    q.serve(Frame(luma, index=1, timestamp_ns=now))                # read before the named time
    q.serve(Frame(luma, index=2, timestamp_ns=now + 60_000_000))   # the first one after it
    t.join(2)
    assert got["f"].index == 2
    # A stamp on another clock (a recording) always counts.
    t = threading.Thread(target=lambda: got.__setitem__("g", q.next_frame(2.0, now + 10**12)))
    t.start()
    time.sleep(0.05)
    q.serve(Frame(luma, index=3, timestamp_ns=33_000_000))
    t.join(2)
    assert got["g"].index == 3


# -- the bridge against a real broker ----------------------------------------------------------------
class _Listener:
    def __init__(self, port, topic):
        import paho.mqtt.client as mqtt
        self.msgs = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = lambda c, u, m: self.msgs.append((m.topic, m.payload, m.retain))
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(topic, 1)
        self.c.loop_start()

    def publish(self, topic, payload, retain=False):
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(2)

    def wait(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.msgs if pred(m)]
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no such message; got {[(t, p[:120]) for t, p, _ in self.msgs]}")

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_bridge_token_retained_dedup_and_offline(broker):  # noqa: F811
    from pifocus.rig.bridge import MqttBridge

    rig = "unit" + uuid.uuid4().hex[:6]
    params = MqttParams(enabled=True, port=broker.port, rig=rig, camera="c1", token=TOKEN,
                        state_min_interval_s=0.1, thumbnail_interval_s=0)
    ctl = ScriptedControls()
    lst = _Listener(broker.port, f"pifocus/{rig}/#")
    cmd = f"pifocus/{rig}/all/cmd/nudge"
    # A retained command, waiting on the broker before the camera subscribes: it would run on
    # every reconnect, so it is refused.  (A live subscriber gets it with retain = false.)
    lst.publish(cmd, json.dumps({"id": "n0", "steps": 5, "token": TOKEN}), retain=True)
    bridge = MqttBridge(ctl, params).start()
    try:
        state = lst.wait(lambda m: m[0].endswith("/c1/state") and m[1] != OFFLINE)[0]
        assert state[2] is True or json.loads(state[1])["online"]  # retained

        def replies(cid):
            return [json.loads(p) for t, p, _ in lst.msgs if t.endswith("/reply/nudge") and json.loads(p)["id"] == cid]

        def reply_to(cid):
            lst.wait(lambda m: m[0].endswith("reply/nudge") and f'"{cid}"'.encode() in m[1])
            return replies(cid)[0]

        lst.publish(cmd, json.dumps({"id": "n1", "steps": 5}))
        assert reply_to("n1")["status"] == 401 and ctl.calls == []
        lst.publish(cmd, json.dumps({"id": "n2", "steps": 5, "token": "not-the-token"}))
        assert reply_to("n2")["status"] == 403 and ctl.calls == []
        assert "retained commands are refused" in reply_to("n0")["error"] and ctl.calls == []
        lst.publish(cmd, b"", retain=True)  # clear it
        lst.publish(cmd, b"{not json")
        lst.wait(lambda m: m[0].endswith("reply/nudge") and b"not UTF-8 JSON" in m[1])
        # The same id three times (a QoS 1 redelivery, a dashboard resend): run once, answered each time.
        for _ in range(3):
            lst.publish(cmd, json.dumps({"id": "n4", "steps": 5, "token": TOKEN}))
        deadline = time.monotonic() + 5
        while len(replies("n4")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert ctl.calls == [("nudge", 5)]
        assert all(r["ok"] and r["result"] == {"position": 105} for r in replies("n4"))
        assert bridge.dedup.duplicates == 2
    finally:
        bridge.stop()
    lst.wait(lambda m: m[0].endswith("/c1/state") and m[1] == OFFLINE)  # clean stop: "offline"
    lst.close()


def test_documented_acl_on_a_real_broker(tmp_path):
    """MQTT.md's Mosquitto password file and ACL: no anonymous clients; a camera cannot
    publish commands (so it cannot steer the others); the dashboard's commands arrive."""
    import re

    import paho.mqtt.client as mqtt

    from mqtt_broker import Broker

    need_broker()
    pw = tmp_path / "passwd"
    for i, (user, password) in enumerate([("dashboard", "dash-pass"), ("pi-01", "cam-pass")]):
        subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [str(pw), user, password],
                       check=True, capture_output=True)
    acl = re.search(r"```\n(user dashboard\n.*?)```", (ROOT / "pifocus/web/MQTT.md").read_text(), re.S).group(1)
    (tmp_path / "acl").write_text(acl)
    b = Broker(tmp_path / "b", extra_conf=f"password_file {pw}\nacl_file {tmp_path / 'acl'}\n").start()

    def client(user=None, password=None):
        got, rc = [], {}
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if user:
            c.username_pw_set(user, password)
        c.on_connect = lambda cl, u, f, reason, p: rc.setdefault("rc", reason)
        c.on_message = lambda cl, u, m: got.append(m.topic)
        c.connect("127.0.0.1", b.port)
        c.loop_start()
        deadline = time.monotonic() + 5
        while "rc" not in rc and time.monotonic() < deadline:
            time.sleep(0.02)
        return c, got, rc.get("rc")

    try:
        anon, _, rc = client()
        assert rc is not None and rc.is_failure  # not authorised
        anon.loop_stop()
        cam, cam_got, rc = client("pi-01", "cam-pass")
        assert not rc.is_failure
        cam.subscribe("pifocus/r/pi-01/cmd/+", 1)
        cam.subscribe("pifocus/r/all/cmd/+", 1)
        dash, dash_got, rc = client("dashboard", "dash-pass")
        assert not rc.is_failure
        dash.subscribe("pifocus/#", 1)
        time.sleep(0.3)
        cam.publish("pifocus/r/all/cmd/nudge", b'{"id":"evil"}', qos=1).wait_for_publish(2)  # denied: dropped
        cam.publish("pifocus/r/pi-01/state", b"{}", qos=1).wait_for_publish(2)               # its own: allowed
        dash.publish("pifocus/r/all/cmd/nudge", b'{"id":"ok"}', qos=1).wait_for_publish(2)
        time.sleep(0.5)
        assert cam_got == ["pifocus/r/all/cmd/nudge"]  # the dashboard's only
        assert dash_got.count("pifocus/r/all/cmd/nudge") == 1 and "pifocus/r/pi-01/state" in dash_got
        for c in (cam, dash):
            c.loop_stop()
            c.disconnect()
    finally:
        b.stop()


def test_pifocus_rig_command_serves_and_stops_on_sigterm(broker, tmp_path):  # noqa: F811
    import signal
    import urllib.request

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "pifocus", "rig", "--json", "--broker", f"127.0.0.1:{broker.port}", "--rig", "clitest",
           "--port", "0"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["rig"] == "clitest" and first["broker"] == f"127.0.0.1:{broker.port}"
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(first["url"] + "api/rig", timeout=5) as r:
                doc = json.loads(r.read())
            if doc["connected"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert doc["ok"] and doc["connected"] and doc["rig"] == "clitest" and doc["cameras"] == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("flags, message", [
    (["--broker", "host:99999"], "--broker 'host:99999': the port must be 1..65535"),
    (["--rig", "a/b"], "mqtt.rig = 'a/b' is invalid"),
    (["--host", "0.0.0.0"], "set [web] token"),
])
def test_pifocus_rig_bad_flags_are_one_line_errors(flags, message, tmp_path):
    pytest.importorskip("paho.mqtt.client")
    r = subprocess.run([sys.executable, "-m", "pifocus", "rig", "--port", "0"] + flags, capture_output=True, text=True,
                       timeout=60, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and r.stderr.startswith("pifocus: error:") and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def _make_certs(folder: Path):
    """A CA and a server certificate for 127.0.0.1 (openssl), or skip."""
    import shutil

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=pifocus test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem", "-days", "2",
        "-subj", "/CN=someone else")


def test_tls_to_the_broker(tmp_path):
    """[mqtt] tls with ca_file: the state arrives over TLS; a CA that did not sign the
    broker's certificate never connects."""
    from mqtt_broker import Broker

    from pifocus.rig.bridge import MqttBridge

    need_broker()
    _make_certs(tmp_path)
    b = Broker(tmp_path / "b", extra_conf=f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'server.pem'}\n"
                                          f"keyfile {tmp_path / 'server.key'}\n").start()
    rig = "tls" + uuid.uuid4().hex[:6]
    good = bad = None
    try:
        params = MqttParams(enabled=True, port=b.port, rig=rig, camera="c1", tls=True, ca_file=str(tmp_path / "ca.pem"),
                            thumbnail_interval_s=0, reconnect_min_s=0.2, reconnect_max_s=0.5)
        good = MqttBridge(ScriptedControls(), params).start()
        assert good.client.connected.wait(10), good.client.last_error
        deadline = time.monotonic() + 5
        while good.states == 0 or good.publisher.sent == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        wrong = MqttParams(enabled=True, port=b.port, rig=rig, camera="c2", tls=True,
                           ca_file=str(tmp_path / "other.pem"), thumbnail_interval_s=0)
        bad = MqttBridge(ScriptedControls(), wrong).start()
        assert not bad.client.connected.wait(2)
        assert bad.client.connect_failures >= 1 and "mqtt.ca_file" in bad.client.last_error
        with pytest.raises(ConfigError, match="mqtt.ca_file"):
            MqttBridge(ScriptedControls(), dataclasses_replace(wrong, ca_file=str(tmp_path / "missing.pem")))
    finally:
        for br in (good, bad):
            if br is not None:
                br.stop()
        b.stop()


def dataclasses_replace(obj, **changes):
    import dataclasses
    return dataclasses.replace(obj, **changes)


def test_broker_away_the_outbox_stays_bounded_and_stop_is_quick():
    """No broker at all: states pile up in the outbox up to queue_max (oldest dropped,
    counted; retained states coalesce), events too, and stopping does not wait on the network."""
    pytest.importorskip("paho.mqtt.client")
    from mqtt_broker import free_port

    from pifocus.rig.bridge import MqttBridge

    params = MqttParams(enabled=True, port=free_port(), rig="away", camera="c1", queue_max=8,
                        state_min_interval_s=0.05, state_max_interval_s=0.05, thumbnail_interval_s=0)
    bridge = MqttBridge(ScriptedControls(), params).start()
    try:
        for i in range(20):
            bridge.event("capture", {"n": i})
        time.sleep(0.5)
        assert not bridge.client.connected.is_set()
        assert len(bridge.outbox) == 8 and bridge.outbox.dropped >= 12
        assert bridge.outbox.coalesced >= 1  # a newer state replaced the waiting one
        waiting = [bridge.outbox.get(0) for _ in range(8)]
        assert sum(m.topic.endswith("/state") for m in waiting) == 1  # one state: the newest
    finally:
        t0 = time.monotonic()
        bridge.stop()
        assert time.monotonic() - t0 < 1.5
