"""Reading and replacing the small files pifocus keeps (state, config, ``sweep.csv``, model
metadata) without being fooled by special files.

* :func:`read_limited` -- refuse anything that is not a regular file (``/dev/zero`` would be
  read without end, a FIFO would block) and refuse files above a size cap;
* :func:`check_replaceable` -- refuse to rename a temp file over a device node or FIFO
  (``--state-file /dev/null`` run as root would turn the device into a regular file).
"""

import os
import stat

from .exc import FileRefusedError

#: Size caps (bytes) of the files pifocus reads whole.
STATE_MAX_BYTES = 64 * 1024
CONFIG_MAX_BYTES = 1024 * 1024
METADATA_MAX_BYTES = 1024 * 1024
SWEEP_CSV_MAX_BYTES = 32 * 1024 * 1024


def _kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words."""
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def _refuse(path: str, what: str, mode: int) -> FileRefusedError:
    return FileRefusedError(f"{what} {path} is {_kind(mode)}, not a regular file; give the path of a "
                            f"regular file (or one that does not exist yet)")


def read_limited(path, what: str, limit: int) -> bytes:
    """The whole content of the regular file ``path``, at most ``limit`` bytes.

    Args:
        path: the file.
        what: what it is, for messages (e.g. ``"drive state file"``).
        limit: the size cap in bytes.

    Raises:
        FileNotFoundError: it does not exist (callers decide what that means).
        FileRefusedError: it is a device, FIFO, socket or directory, or larger than ``limit``.
        OSError: it cannot be read.
    """
    path = os.fspath(path)
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, what, st.st_mode)
    # O_NONBLOCK: should it have become a FIFO since the stat, opening it does not hang.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, what, st.st_mode)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileRefusedError(f"{what} {path} is larger than {limit} bytes ({max(st.st_size, len(data))} "
                               f"bytes); this is not a {what}: check the path")
    return data


def check_replaceable(path, what: str) -> None:
    """Raise :class:`FileRefusedError` when ``path`` exists and is not a regular file (a
    rename over it would replace a device node or FIFO); absent is fine."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, what, st.st_mode)
