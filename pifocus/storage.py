"""Writing files so that a full disk (or any write error) leaves nothing half-written.

:func:`atomic_write` writes ``NAME.part`` next to the target, syncs it and renames it over
``NAME``: a reader sees the old file or the whole new one, never a truncated one, and on
any error the ``.part`` file is removed again (a full disk is not kept full by our
leftovers).  Errors come back as :class:`pifocus.exc.StorageError` that say "disk full"
with the path when the filesystem ran out of space.
"""

import errno
import logging
import os
from pathlib import Path

from .exc import StorageError

log = logging.getLogger(__name__)

#: errno values that mean "no space left": the disk, or the user's quota.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

# Indirections the tests replace to simulate a full disk without filling one.
_os_write = os.write
_os_fsync = os.fsync


def storage_error(e: OSError, path, nbytes=None, what: str = "") -> StorageError:
    """A :class:`StorageError` for ``e`` raised while writing ``path`` (``nbytes`` long),
    the message prefixed with ``what`` (e.g. ``"record: "``)."""
    size = f" ({nbytes} bytes)" if nbytes is not None else ""
    if e.errno in DISK_FULL_ERRNOS:
        return StorageError(f"{what}disk full: cannot write {path}{size}; free space on that filesystem "
                            "or write somewhere else", path=path, disk_full=True)
    return StorageError(f"{what}cannot write {path}{size}: {e.strerror or e}; check the folder exists and "
                        "is writable", path=path)


def remove_quietly(path) -> None:
    """Remove ``path`` if it exists; log (do not raise) when that fails."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("cannot remove the partial file %s: %s", path, e)


def atomic_write(path, data: bytes, what: str = "") -> int:
    """Write ``data`` to ``path`` atomically (``path.part``, fsync, rename); returns the
    number of bytes written.

    Raises:
        StorageError: the file could not be written (``disk_full`` set when out of space);
            ``path`` is unchanged and no ``.part`` file is left.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    view = memoryview(data)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            while view:
                n = _os_write(fd, view)
                view = view[n:]
            _os_fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        remove_quietly(tmp)
        raise storage_error(e, path, len(data), what) from None
    return len(data)
