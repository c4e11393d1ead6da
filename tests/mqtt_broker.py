"""A real Mosquitto broker for the MQTT tests: ``/usr/sbin/mosquitto -c <tmp conf>`` on a free
loopback port, started once per test session, stopped at the end; the tests skip with the
reason when the binary (Debian's ``mosquitto`` package, installed by ``.ci/run``) or
paho-mqtt is missing.

:class:`Broker` can be killed (SIGKILL: no goodbye, no persistence written) and started
again on the same port, which is how the reconnect test takes the broker away mid-run.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

MOSQUITTO = os.environ.get("PIFOCUS_MOSQUITTO", "/usr/sbin/mosquitto")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Broker:
    """One Mosquitto process on ``127.0.0.1:port`` with a config in ``folder``.

    ``extra_conf`` lines are appended to the config (a ``password_file``, an ``acl_file``).
    """

    def __init__(self, folder: Path, port: int = 0, extra_conf: str = ""):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.folder / "mosquitto.conf"
        self.log = self.folder / "mosquitto.log"
        allow = "false" if "password_file" in extra_conf else "true"
        # As root Mosquitto would drop to the "mosquitto" user, which cannot read pytest's
        # private tmp folders (log, password file); keep the tests' own user.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous {allow}\npersistence false\n{user}"
                             f"log_dest file {self.log}\nlog_type error\nlog_type warning\nlog_type notice\n"
                             f"{extra_conf}")
        self.proc = None
        self.starts = 0

    def start(self, timeout: float = 5.0) -> "Broker":
        """Start it and wait until the port accepts connections."""
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode(errors='replace')}; "
                                   f"log: {self.log.read_text() if self.log.exists() else ''}")
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not open its port in time")
            time.sleep(0.05)
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word (like a power cut)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def need_broker():
    """Skip (with the reason) unless Mosquitto and paho-mqtt >= 2 are installed."""
    if not (os.access(MOSQUITTO, os.X_OK) or shutil.which(MOSQUITTO)):
        pytest.skip(f"{MOSQUITTO} not found: install Debian's mosquitto package (.ci/run does)")
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        pytest.skip("paho-mqtt is not installed: pip install 'pifocus[mqtt]'")
    if not hasattr(mqtt, "CallbackAPIVersion"):
        pytest.skip("paho-mqtt < 2.0 installed: pip install -U 'paho-mqtt>=2.0'")


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A Mosquitto broker on a free loopback port for the whole session."""
    need_broker()
    b = Broker(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()
