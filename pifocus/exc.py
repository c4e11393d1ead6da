"""The pifocus error tree.

Every error pifocus raises on purpose derives from :class:`PiFocusError`; the CLI prints
it as one ``pifocus: error: ...`` line.  Messages name the parameter, the bad value, what is
allowed and how to fix it.
"""


class PiFocusError(Exception):
    """Base of every deliberate pifocus error."""


class ConfigError(PiFocusError, ValueError):
    """A configuration key, value or command-line option is invalid."""


class SourceError(PiFocusError):
    """A frame source cannot be opened or has failed while reading."""


class SourceExhausted(SourceError):
    """A finite frame source (folder, video) has no more frames."""


class SourceDisconnected(SourceError):
    """A live source (camera) dropped out; reopening it may succeed."""


class SourceNotFound(SourceError):
    """The device is not there at all (a camera that no longer enumerates): reopening is
    retried rarely (minutes), since every failed attempt may cost resources (picamera2 leaks
    a pipe fd per failed ``Picamera2(n)``)."""


class ModelError(PiFocusError):
    """A focus model file or its metadata is missing, malformed or incompatible."""


class DriveError(PiFocusError):
    """A focus drive cannot be opened or refused a move."""


class LimitError(DriveError, ValueError):
    """A requested drive position or range lies outside the soft limits."""


class AutofocusError(PiFocusError):
    """An autofocus run could not be carried out (not a quality-gate failure, which is a result)."""


class OutputError(PiFocusError):
    """An output device (LED, buzzer, trigger) could not be set up, e.g. a pin already in use."""


class ServiceError(PiFocusError):
    """A control request to the running service (web page, later MQTT) that cannot be
    carried out now.

    Attributes:
        status: the HTTP status that fits (400 bad value, 409 conflict, 503 unavailable,
            507 disk full).
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class FileRefusedError(PiFocusError, OSError):
    """A path that should name a small regular file (state, config, ``sweep.csv``, model
    metadata) names a device, FIFO, socket or directory, or a file larger than allowed.
    Also an ``OSError``, so callers that report unreadable files report this one too."""


class StorageError(PiFocusError, OSError):
    """A file could not be written: the disk is full, or the folder is not writable.

    Attributes:
        disk_full: True when the filesystem ran out of space (``ENOSPC``/``EDQUOT``).
        path: the file that could not be written.
    """

    def __init__(self, message: str, path=None, disk_full: bool = False):
        super().__init__(message)
        self.path = path
        self.disk_full = disk_full

    def __str__(self) -> str:  # OSError would format its args as "[Errno ...]"
        return str(self.args[0]) if self.args else ""


def is_lgpio_error(e: BaseException) -> bool:
    """True for ``lgpio.error`` (lgpio's own exception class, not an OSError): what a pin
    claim raises through gpiozero's LGPIOFactory or lgpio directly, e.g. ``'GPIO busy'``
    when another process holds the line.  Checked without importing lgpio (Pi only)."""
    import sys
    lg = sys.modules.get("lgpio")
    cls = getattr(lg, "error", None)
    if isinstance(cls, type) and isinstance(e, cls):
        return True
    return type(e).__name__ == "error" and "lgpio" in (type(e).__module__ or "")


def lgpio_busy_hint(gpio) -> str:
    """The fix for a line another process holds (``lgpio.error('GPIO busy')``)."""
    return (f"find the program holding it with `gpioinfo` (or `pinctrl get {gpio}`) and stop it "
            "(another pifocus, a dtoverlay, a script)")
