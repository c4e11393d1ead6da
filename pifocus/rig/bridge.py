"""The camera side of the rig: :class:`MqttBridge`, run by ``pifocus serve`` when
``[mqtt] enabled``.

Threads (none of them is the frame loop, and the frame loop never waits on any):

* **sampler** -- reads ``controls.status()`` every ``state_min_interval_s`` and queues the
  retained state when :class:`~pifocus.rig.topics.StateLimiter` says so (on a change, at most every
  ``state_min_interval_s``; at least every ``state_max_interval_s``), and a thumbnail every
  ``thumbnail_interval_s`` from the preview hub (the newest preview when someone watches,
  else one encoded for it);
* **publisher** (:class:`~pifocus.rig.client.Publisher`) -- drains the bounded outbox into
  paho (drop-oldest when the broker is away, counted);
* **paho's network thread** -- receives commands; it only checks them (topic, JSON, id,
  token, de-duplication) and hands them to
* **command workers** -- carry each out through the controls
  (:class:`~pifocus.rig.commands.CommandRunner`) and queue its reply.  Commands that move
  the lens (``autofocus``, ``continuous``, ``nudge``, ``preset``) run one after the other in
  the order they came, in one worker; ``capture`` and ``reload`` in up to ``max_commands``
  others, so a capture is not held up by an autofocus run.

A command id is run at most once: a QoS 1 redelivery after a reconnect, or the dashboard
sending it again, finds it in :class:`~pifocus.rig.topics.CommandDedup` and gets the stored
reply again (or nothing while it still runs).
"""

import concurrent.futures
import logging
import threading
import time
from typing import Callable, Optional

from ..exc import PiFocusError, ServiceError
from .client import MqttClient, Publisher
from .commands import CommandRunner
from .topics import (OFFLINE, CommandDedup, Message, Outbox, StateLimiter, Topics, command_id, decode, encode,
                     parse_command, parse_topic, reply_document, state_document, state_key)

log = logging.getLogger(__name__)

#: Commands that move the lens: run one at a time, in the order they came.
DRIVE_COMMANDS = ("autofocus", "continuous", "nudge", "preset")
#: Seconds a thumbnail waits for the preview hub to encode a frame.
THUMB_WAIT_S = 0.5
#: JPEG quality of the thumbnails.
THUMB_QUALITY = 70


def thumbnail_jpeg(jpeg: bytes, width: int) -> Optional[bytes]:
    """``jpeg`` scaled down to ``width`` px wide (not up), as JPEG; None when it cannot be
    decoded."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    if w > width:
        img = cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    return buf.tobytes() if ok else None


class MqttBridge:
    """Publishes one camera's state and events and answers its commands over MQTT.

    Args:
        controls: the service's :class:`~pifocus.controls.Controls` (what the web page gets).
        params: the :class:`~pifocus.rig.MqttParams`.
        reload_fn: ``fn() -> bool`` for the ``reload`` command (None: not possible).
        reload_error: ``fn() -> str | None``, why the last reload failed.

    Raises:
        ConfigError: paho-mqtt is missing, or the TLS settings cannot be used.
    """

    def __init__(self, controls, params, *, reload_fn: Optional[Callable[[], bool]] = None,
                 reload_error: Optional[Callable[[], Optional[str]]] = None):
        self.controls = controls
        self.params = params
        self.topics = Topics(params.rig, params.camera)
        self.outbox = Outbox(params.queue_max)
        self.dedup = CommandDedup(params.dedup_size)
        self.limiter = StateLimiter(params.state_min_interval_s, params.state_max_interval_s)
        self._stop = threading.Event()
        self.runner = CommandRunner(controls, reload_fn=reload_fn, reload_error=reload_error, emit=self.event,
                                    command_timeout_s=params.command_timeout_s, stop=self._stop)
        self.client = MqttClient(params, f"pifocus-{params.rig}-{params.camera}", clean_session=False,
                                 will=(self.topics.state, OFFLINE),
                                 subscriptions=[(f, 1) for f in self.topics.command_filters],
                                 on_message=self._on_message, on_connect=self.limiter.reset)
        self.publisher = Publisher(self.outbox, self.client)
        self._workers = concurrent.futures.ThreadPoolExecutor(params.max_commands,
                                                              thread_name_prefix="pifocus-mqtt-cmd")
        self._drive_worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pifocus-mqtt-drive")
        self._sampler = threading.Thread(target=self._sample, name="pifocus-mqtt-state", daemon=True)
        self.states = 0
        self.thumbs = 0
        self.refused = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "MqttBridge":
        """Connect in the background (retrying with backoff) and start the threads."""
        self.publisher.start()
        self.client.start()
        self._sampler.start()
        log.info("mqtt: camera %r of rig %r, broker %s:%d", self.params.camera, self.params.rig,
                 self.params.host, self.params.port)
        return self

    def stop(self, timeout: float = 0.6) -> None:
        """Stop the threads, publish "offline" (retained) and disconnect, within ~``timeout`` s."""
        self._stop.set()
        self._sampler.join(timeout / 2)
        for pool in (self._workers, self._drive_worker):
            pool.shutdown(wait=False, cancel_futures=True)
        self.publisher.flush(timeout / 2)
        self.publisher.stop()
        self.client.stop(final=(self.topics.state, OFFLINE), timeout=timeout / 2)

    def stats(self) -> dict:
        """Counters: messages queued/sent/dropped, states, commands, duplicates, reconnects."""
        return {"queued": self.outbox.put_count, "sent": self.publisher.sent, "dropped": self.outbox.dropped,
                "coalesced": self.outbox.coalesced, "states": self.states, "thumbs": self.thumbs,
                "commands": self.runner.executed, "duplicates": self.dedup.duplicates, "refused": self.refused,
                "connects": self.client.connects, "disconnects": self.client.disconnects,
                "connected": self.client.connected.is_set()}

    # -- outgoing -------------------------------------------------------------------------------
    def event(self, name: str, doc: dict) -> None:
        """Queue the non-retained event ``name`` (``autofocus``, ``capture``)."""
        body = dict(doc, camera=self.params.camera, time_unix=round(time.time(), 6))
        self.outbox.put(Message(self.topics.event(name), encode(body), qos=1, retain=False))

    def _reply(self, name: str, doc: dict) -> None:
        self.outbox.put(Message(self.topics.reply(name), encode(doc), qos=1, retain=False))

    def _sample(self) -> None:
        p = self.params
        tick = p.state_min_interval_s  # each look costs a status document
        next_thumb = time.monotonic()
        while not self._stop.wait(tick):
            now = time.monotonic()
            try:
                doc = state_document(self.controls.status(), p.camera, self.stats())
                key = state_key(doc)
                if self.limiter.due(key, now):
                    self.outbox.put(Message(self.topics.state, encode(doc), qos=1, retain=True))
                    self.limiter.mark(key, now)
                    self.states += 1
                if p.thumbnail_interval_s and now >= next_thumb:
                    next_thumb = now + p.thumbnail_interval_s
                    self._thumbnail()
            except Exception:  # the state must keep flowing whatever one sample did
                log.exception("mqtt: publishing the state failed")

    def _thumbnail(self) -> None:
        hub = self.controls.hub
        if hub is None:
            return
        pf = hub.latest()
        fresh_ns = self.params.thumbnail_interval_s * 1e9
        if pf is None or time.monotonic_ns() - pf.encoded_ns > fresh_ns:
            pf = hub.snapshot(THUMB_WAIT_S)  # nobody watches the preview: have one encoded
        if pf is None:
            return
        jpeg = thumbnail_jpeg(pf.jpeg, self.params.thumbnail_width)
        if jpeg is not None:
            self.outbox.put(Message(self.topics.thumb, jpeg, qos=0, retain=True))
            self.thumbs += 1

    # -- incoming (paho's network thread: check, never block) ------------------------------------
    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        parsed = parse_topic(topic)
        if parsed is None or parsed[2] != "cmd":
            return
        _rig, target, _kind, name = parsed
        received = round(time.time(), 6)
        cid = None
        try:
            obj = decode(payload)
            cid = command_id(obj)
            if retain:
                raise ServiceError("retained commands are refused (they would run again on every "
                                   "reconnect); publish commands with retain = false")
            cmd = parse_command(name, target, obj, self.params.token)
        except ServiceError as e:
            self.refused += 1
            log.warning("mqtt: refused %s on %s: %s", name, topic, e)
            self._reply(name, reply_document(cid, self.params.camera, name, ok=False, status=e.status,
                                             error=str(e), received_unix=received))
            return
        seen = self.dedup.begin(cmd.id)
        if seen == "running":
            log.info("mqtt: command %s %s is already running; duplicate ignored", name, cmd.id)
            return
        if seen == "done":
            log.info("mqtt: command %s %s already done; its reply is sent again", name, cmd.id)
            self._reply(name, self.dedup.reply(cmd.id))
            return
        try:
            pool = self._drive_worker if cmd.name in DRIVE_COMMANDS else self._workers
            pool.submit(self._execute, cmd, received)
        except RuntimeError:  # shutting down
            pass

    def _execute(self, cmd, received: float) -> None:
        cam = self.params.camera
        try:
            ok, result = self.runner.run(cmd)
            doc = reply_document(cmd.id, cam, cmd.name, ok=ok, result=result, received_unix=received)
        except ServiceError as e:
            doc = reply_document(cmd.id, cam, cmd.name, ok=False, status=e.status, error=str(e),
                                 received_unix=received)
        except PiFocusError as e:
            doc = reply_document(cmd.id, cam, cmd.name, ok=False, status=500, error=str(e), received_unix=received)
        except Exception as e:  # the reply must come, whatever the command did
            log.exception("mqtt: command %s %s crashed", cmd.name, cmd.id)
            doc = reply_document(cmd.id, cam, cmd.name, ok=False, status=500,
                                 error=f"unexpected {type(e).__name__}: {e}", received_unix=received)
        self.dedup.finish(cmd.id, doc)
        self._reply(cmd.name, doc)
        log.info("mqtt: %s %s -> %s", cmd.name, cmd.id, "ok" if doc["ok"] else doc.get("error"))
