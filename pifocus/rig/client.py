"""The MQTT client: the one module that imports ``paho-mqtt`` (>= 2.0, VERSION2 callbacks).

:class:`MqttClient` wraps ``paho.mqtt.client.Client`` with what every pifocus client needs:
credentials and TLS from :class:`~pifocus.rig.MqttParams`, an optional last will, the
subscriptions made again on every (re)connect, and paho's own reconnect loop with doubling
backoff (``reconnect_delay_set``; ``loop_start`` keeps retrying, the first connection
included).  :class:`Publisher` is the worker thread that drains an
:class:`~pifocus.rig.topics.Outbox` into it, so no other thread ever waits on the network.

paho's behaviour relied on (``paho/mqtt/client.py`` of paho-mqtt 2.1): ``publish()`` only
queues (the network thread sends); QoS 1 messages not yet acknowledged are sent again
after a reconnect; with ``clean_session=False`` the broker keeps the subscriptions and the
QoS 1 messages for a camera that is away (and across a broker restart with Mosquitto
``persistence true``).
"""

import logging
import threading
import time
from typing import Callable, Iterable, Optional, Tuple

from ..exc import ConfigError
from .topics import Message, Outbox

log = logging.getLogger(__name__)

#: Seconds the publisher waits for a message, or for the broker to come back, per look.
PUBLISH_POLL_S = 0.25
#: Seconds between two looks at the outbox while flushing it on shutdown.
FLUSH_POLL_S = 0.02


def paho():
    """The ``paho.mqtt.client`` module.

    Raises:
        ConfigError: paho-mqtt is not installed, or older than 2.0.
    """
    try:
        import paho.mqtt.client as mqtt
    except ImportError as e:
        raise ConfigError("[mqtt] needs paho-mqtt >= 2.0, which is not installed; "
                          "pip install 'pifocus[mqtt]' (or set mqtt.enabled = false)") from e
    if not hasattr(mqtt, "CallbackAPIVersion"):
        raise ConfigError("[mqtt] needs paho-mqtt >= 2.0 (an older one is installed); "
                          "pip install -U 'paho-mqtt>=2.0'")
    return mqtt


class MqttClient:
    """One connection to the broker, kept up by paho's network thread.

    Args:
        params: the :class:`~pifocus.rig.MqttParams` (host, port, credentials, TLS,
            keep-alive, reconnect backoff).
        client_id: the MQTT client id (a camera's is fixed, so its session survives).
        clean_session: False for a camera (the broker keeps its subscriptions and QoS 1
            commands while it is away).
        will: ``(topic, payload)`` published retained by the broker if this client vanishes.
        subscriptions: ``(topic filter, qos)`` subscribed on every connect.
        on_message: ``fn(topic, payload, retain)`` called in paho's network thread -- it
            must not block.
        on_connect: ``fn()`` called (network thread) after every successful connect.

    Attributes:
        connected: an Event set while connected.
        connects, disconnects: counters (a reconnect counts one of each).
    """

    def __init__(self, params, client_id: str, *, clean_session: bool = True,
                 will: Optional[Tuple[str, bytes]] = None, subscriptions: Iterable[Tuple[str, int]] = (),
                 on_message: Optional[Callable] = None, on_connect: Optional[Callable] = None):
        mqtt = paho()
        self.params = params
        self.subscriptions = list(subscriptions)
        self._on_message_cb = on_message
        self._on_connect_cb = on_connect
        self.connected = threading.Event()
        self.connects = 0
        self.disconnects = 0
        self.last_error: Optional[str] = None
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                   clean_session=clean_session, protocol=mqtt.MQTTv311)
        if params.username is not None:
            self._client.username_pw_set(params.username, params.password)
        if params.tls:
            try:
                self._client.tls_set(ca_certs=params.ca_file)
            except (OSError, ValueError) as e:
                raise ConfigError(f"mqtt.ca_file = {params.ca_file!r} cannot be used for TLS: {e}; "
                                  "give a PEM CA certificate file, or leave it empty for the system store") from e
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=params.reconnect_min_s, max_delay=params.reconnect_max_s)
        self._client.max_queued_messages_set(max(16, params.queue_max))
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self.connect_failures = 0
        self._client.on_message = self._on_message
        self._started = False

    # -- paho callbacks (network thread) --------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.error("mqtt: %s (check mqtt.username / mqtt.password and the broker's ACL)", self.last_error)
            return
        self.connects += 1
        self.connect_failures = 0
        self.last_error = None
        for topic, qos in self.subscriptions:
            client.subscribe(topic, qos)
        self.connected.set()
        log.info("mqtt: connected to %s:%d%s", self.params.host, self.params.port,
                 " (session resumed)" if getattr(flags, "session_present", False) else "")
        if self._on_connect_cb is not None:
            self._on_connect_cb()

    def _on_connect_fail(self, client, userdata) -> None:
        self.connect_failures += 1
        self.last_error = (f"cannot connect to the broker at {self.params.host}:{self.params.port} (down, wrong "
                           "host or port, or TLS refused: check mqtt.tls and mqtt.ca_file)")
        # Once per streak of failures at warning level; the retries after it at debug level.
        (log.warning if self.connect_failures == 1 else log.debug)("mqtt: %s; retrying with backoff up to %.0f s",
                                                                   self.last_error, self.params.reconnect_max_s)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was:
            self.disconnects += 1
            log.warning("mqtt: connection to %s:%d lost (%s); reconnecting with backoff up to %.0f s",
                        self.params.host, self.params.port, reason_code, self.params.reconnect_max_s)

    def _on_message(self, client, userdata, msg) -> None:
        if self._on_message_cb is None:
            return
        try:
            self._on_message_cb(msg.topic, bytes(msg.payload), bool(msg.retain))
        except Exception:  # a bad message must never stop paho's network thread
            log.exception("mqtt: handling a message on %s failed", msg.topic)

    # -- API ------------------------------------------------------------------------------------
    def start(self) -> "MqttClient":
        """Start connecting in the background (retrying with backoff until it works)."""
        self._client.connect_async(self.params.host, self.params.port, keepalive=self.params.keepalive_s)
        self._client.loop_start()
        self._started = True
        return self

    def publish(self, msg: Message) -> bool:
        """Hand ``msg`` to paho (never waits for the network); False when not connected."""
        if not self.connected.is_set():
            return False
        info = self._client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
        return info.rc == 0

    def send_queued(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 even while disconnected: paho keeps the message (up to
        ``queue_max``) and sends it once connected again (the dashboard's commands)."""
        self._client.publish(topic, payload, qos=1, retain=False)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now (when connected) and on every reconnect."""
        self.subscriptions.append((topic, qos))
        if self.connected.is_set():
            self._client.subscribe(topic, qos)

    def stop(self, final: Optional[Tuple[str, bytes]] = None, timeout: float = 1.0) -> None:
        """Publish ``final`` retained (a clean "offline"), disconnect and end the thread."""
        if not self._started:
            return
        self._started = False
        if final is not None and self.connected.is_set():
            info = self._client.publish(final[0], final[1], qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):  # not connected any more: the will says it
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()


class Publisher:
    """The worker thread between an :class:`~pifocus.rig.topics.Outbox` and a client: the
    only thread that calls :meth:`MqttClient.publish`.  While the broker is away messages
    wait in the outbox (bounded, drop-oldest)."""

    def __init__(self, outbox: Outbox, client: MqttClient):
        self.outbox = outbox
        self.client = client
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pifocus-mqtt-publish", daemon=True)

    def start(self) -> "Publisher":
        """Start the thread."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.outbox.get(PUBLISH_POLL_S)
            if msg is None:
                continue
            if not self.client.publish(msg):
                self.outbox.unget(msg)
                self.client.connected.wait(PUBLISH_POLL_S)
                continue
            self.sent += 1

    def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the outbox to empty (shutdown)."""
        deadline = time.monotonic() + timeout
        while len(self.outbox) and time.monotonic() < deadline and self.client.connected.is_set():
            time.sleep(FLUSH_POLL_S)

    def stop(self) -> None:
        """End the thread."""
        self._stop.set()
        self.outbox.wake()
        self._thread.join(1.0)
