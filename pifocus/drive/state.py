"""Drive state files: where a drive keeps its position across restarts, and how it is
written so that a crash never leaves a torn file.

The file is one JSON object (``version`` 1)::

    {"position": 512.0, "moving": false, "homed": true, "drive": "stepper",
     "name": "stepper", "units": "steps", "last_dir": 1, "time": 1733050000.0, "version": 1}

* ``position``: the logical position, drive units; ``moving``: true while a move is under
  way (write-ahead record, with the ``target`` of that leg), so a process that dies mid-move
  leaves ``moving`` behind and the next open knows the position is uncertain;
* ``homing``: true while homing (the position is unknown until it completes);
* ``uncertain``: (only when true) the position was not known when written -- a move was
  interrupted earlier, or the drive never homed since; it stays until homing;
* ``homed``: the position was found by homing (kept across moves and restarts);
* ``last_dir``: direction of the last leg (+1/-1, 0 = none): which side the slack is on;
* ``time``: seconds since the epoch at the write.

:class:`PersistentPosition` is the part of :class:`~pifocus.drive.FocusDrive` that reads and
writes the file; the functions here do not know about drives.
"""

import json
import logging
import math
import os
import tempfile
import time
from typing import Optional

from ..exc import DriveError
from ..safeio import STATE_MAX_BYTES, check_replaceable, read_limited

# Logged under the name these messages had before this module was split out of
# drive/__init__.py, so log lines ("WARNING pifocus.drive: ...") and journal filters stay the same.
log = logging.getLogger("pifocus.drive")


def default_state_dir() -> str:
    """Directory for drive state files: ``$PIFOCUS_STATE_DIR``, else
    ``$XDG_STATE_HOME/pifocus``, else ``~/.local/state/pifocus``."""
    d = os.environ.get("PIFOCUS_STATE_DIR")
    if d:
        return d
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "pifocus")


def atomic_write_json(path: str, data: dict) -> None:
    """Write JSON so that a crash at any point leaves the old or the new file, whole.

    Temp file in the same directory, ``flush`` + ``fsync``, ``os.replace`` over the target,
    then ``fsync`` of the directory so the rename itself is durable.

    Raises:
        FileRefusedError: ``path`` is a device, FIFO, socket or directory (an ``OSError``).
        OSError: the file cannot be written.
    """
    check_replaceable(path, "state file")  # never rename over /dev/null, a FIFO, ...
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    prefix = f".tmp-{os.getpid()}-"   # the writer's pid: a temp file left by a killed writer is removable
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    remove_stale_temps(directory)
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def remove_stale_temps(directory: str) -> int:
    """Remove ``.tmp-<pid>-*.json`` files of :func:`atomic_write_json` whose writer is gone (a
    ``kill -9`` between ``mkstemp`` and ``os.replace``); returns how many.  Files of live
    processes (another drive writing right now) are left alone."""
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        parts = name.split("-", 2)
        if not (name.startswith(".tmp-") and name.endswith(".json") and len(parts) == 3 and parts[1].isdigit()):
            continue
        pid = int(parts[1])
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue            # alive (or not ours to signal): leave it
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed += 1
        except OSError:
            pass
    if removed:
        log.info("removed %d temp file(s) left in %s by a killed writer", removed, directory)
    return removed


def read_state(path: str) -> Optional[dict]:
    """The saved drive state, or None when there is none or it cannot be read."""
    try:
        data = json.loads(read_limited(path, "drive state file", STATE_MAX_BYTES).decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("drive state file %s unreadable (%s); position unknown", path, e)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("position"), (int, float)):
        log.warning("drive state file %s has no position; ignoring it", path)
        return None
    return data


class PersistentPosition:
    """Keeps a drive's position in its state file (mixed into :class:`~pifocus.drive.FocusDrive`).

    The drive writes a write-ahead record (``moving``) before each leg and the new position
    after it (:meth:`_save`), and reads the file back on open (:meth:`_restore`).  It relies
    on the drive's ``params``, ``name``, ``kind``, ``units``, ``native_range``,
    ``persistent_by_default``, ``state_path`` (``None`` = no file), ``_position``,
    ``_last_dir``, ``_homed``, ``position_uncertain`` (and ``uncertain_reason``), ``clamp()`` and ``default_position()``.

    Attributes (set by the drive's ``__init__``):
        position_uncertain: the position may be wrong (a move was interrupted, this run or
            the last, and no homing is configured); step-counting drives then refuse to move.
        uncertain_reason: why the position is uncertain (``""`` when it is not).
        told_position: where the user says the lens is now (``--assume-position``), applied
            on open over a saved or uncertain position unless open() homed; ``None``: nothing said.
        homed_on_open: the last open() homed the drive (configured, or the position was uncertain).
    """

    #: True for drives that set an absolute position (libcamera, replay): a completed move
    #: makes an uncertain position certain again.  False for step counters, which refuse to
    #: move while the position is uncertain.
    absolute_positioning = False
    uncertain_reason = ""
    homed_on_open = False

    def _state_path(self) -> Optional[str]:
        """The state file: ``params.state_file`` (``""``/``"none"``: none), else for drives
        that persist by default ``<name>-position.json`` in :func:`default_state_dir`."""
        sf = self.params.state_file
        if sf is None:
            if not self.persistent_by_default:
                return None
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.params.name)
            return os.path.join(default_state_dir(), f"{safe}-position.json")
        if sf.strip().lower() in ("", "none"):
            return None
        return os.path.expanduser(sf)

    def _write_state(self, data: dict) -> None:
        """Write ``data`` with the drive's identity and ``last_dir`` to the state file (atomic).

        Raises:
            DriveError: the file cannot be written (the message names it and the fix).
        """
        if not self.state_path:
            return
        data = dict(data, drive=self.kind, name=self.params.name, units=self.units,
                    last_dir=self._last_dir, time=time.time(), version=1)
        try:
            atomic_write_json(self.state_path, data)
        except OSError as e:
            raise DriveError(f"drive {self.name!r}: cannot write state file {self.state_path}: {e}; "
                             "make its folder writable or set drive.state_file") from e

    def _save(self, moving: bool, target: Optional[float] = None) -> None:
        """Record the current position; ``moving=True`` is the write-ahead record of a leg to
        ``target`` (nothing is written while the position is still unknown)."""
        if self._position is None:
            return
        data = {"position": float(self._position), "moving": bool(moving), "homed": self._homed}
        if self.position_uncertain:
            data["uncertain"] = True  # stays until homing finds the position again
        if target is not None:
            data["target"] = float(target)
        self._write_state(data)

    @property
    def position_known(self) -> bool:
        """False while the drive has no idea where the lens is (it refuses to move)."""
        return self._position is not None

    def _require_position(self) -> None:
        """Raise :class:`DriveError` (with the fix) while the position is unknown."""
        if self._position is None:
            raise DriveError(
                f"drive {self.name!r}: the lens position is unknown (nothing saved"
                f"{' in ' + self.state_path if self.state_path else ''}); home it first "
                "([drive] homing = 'endstop' or 'switch', then `pifocus calibrate`), or say where it is: "
                "--assume-position POS ([drive] assume_position)")

    def _require_certain(self) -> None:
        """Raise :class:`DriveError` (with the fix) while a step-counting drive's position is
        uncertain: a move from a wrong count could run past the soft limits, and autofocus or
        a preset would land somewhere else than it reports."""
        if not self.position_uncertain or self.absolute_positioning:
            return
        raise DriveError(
            f"drive {self.name!r}: the lens position is uncertain ({self.uncertain_reason or 'see the log'}); "
            f"moves are refused until it is known -- autofocus, presets and the soft limits would trust a "
            f"wrong step count (the focus verdict and the LED keep working).  Fix: home it ([drive] homing = "
            f"'endstop' or 'switch'; it then homes on open), or turn the lens to a known mark and say where it "
            f"is: `pifocus position --set POS` (or --assume-position POS on autofocus/calibrate/record)")

    def set_position(self, position: float) -> float:
        """Say where the lens is: the user turned it to a known mark (``pifocus position --set``,
        ``--assume-position``).  Clears an uncertain position and saves it (works on a closed
        drive too: only the state file is written).

        Args:
            position: the lens position now, drive units, within the native range.

        Returns:
            The position set.

        Raises:
            DriveError: ``position`` is not a finite number inside the drive's native range, or
                the state file cannot be written.
        """
        lo, hi = self.native_range
        try:
            pos = float(position)
        except (TypeError, ValueError):
            pos = math.nan
        if not (math.isfinite(pos) and lo <= pos <= hi):
            raise DriveError(f"drive {self.name!r}: position {position!r} is outside the drive's range "
                             f"{lo:g}..{hi:g}; give the position the lens is really at (drive units)")
        before = self._position
        was = " (was uncertain: " + self.uncertain_reason + ")" if self.position_uncertain else ""
        self._position = pos
        self.position_uncertain = False
        self.uncertain_reason = ""
        self._interrupted = None
        self._save(moving=False)
        log.info("drive %s: position set to %g %s by the user (saved %s)%s", self.name, pos, self.units,
                 "nothing" if before is None else f"{before:g}", was)
        return pos

    def _save_on_close(self) -> None:
        """Save the position at close -- unless a move was interrupted: the write-ahead record
        (moving) stays on disk then, never a position nobody reached.  Logs, never raises."""
        try:
            if self._interrupted is None:
                self._save(moving=False)
            else:
                log.warning("drive %s: closing after an interrupted move; the state file keeps it "
                            "marked as moving (position uncertain)", self.name)
        except DriveError as e:  # the message names the file and the fix: no traceback
            log.error("could not save the position: %s", e)
        except Exception:
            log.exception("drive %s: could not save the position", self.name)

    def _mark_interrupted(self, start: float, target: float, exc: BaseException) -> None:
        """A leg ``start -> target`` stopped part-way (``exc``): the position is uncertain."""
        self._interrupted = (start, target)
        self.position_uncertain = True
        self.uncertain_reason = f"a move {start:g} -> {target:g} was interrupted ({type(exc).__name__})"
        log.warning("drive %s: move %g -> %g interrupted (%s); the position is uncertain until "
                    "homed ([drive] homing) or set (pifocus position --set POS)", self.name, start, target,
                    type(exc).__name__)

    def _mark_reached(self) -> None:
        """A leg completed: a drive that sets its position absolutely is certain again."""
        if self.absolute_positioning and self.position_uncertain and not getattr(self, "_abandoned", False):
            self.position_uncertain = False
            self.uncertain_reason = ""
            self._interrupted = None

    def _apply_told_position(self, homed: bool) -> None:
        """On open: :attr:`told_position` (``--assume-position``) becomes the position, unless
        the drive just homed (homing found the truth)."""
        if self.told_position is None:
            return
        if homed:
            log.warning("drive %s: homed on open; --assume-position %g is not used (homing found "
                        "the position)", self.name, self.told_position)
            return
        self.set_position(self.told_position)

    def abandon_move(self) -> None:
        """A move running in another thread will not be waited for (shutdown): mark the
        position uncertain so that :meth:`close` keeps the write-ahead record on disk."""
        self.position_uncertain = True
        self.uncertain_reason = "a move was abandoned at shutdown"
        if self._interrupted is None:
            self._interrupted = (float(self._position) if self._position is not None else math.nan, math.nan)
        self._abandoned = True  # a later move from that thread must not reopen the drive

    def _start_unknown(self) -> None:
        """Nothing saved: ``params.assume_position`` when given; else the drive's own
        :meth:`default_position` when it knows one (sim, replay, libcamera); else (step-counting
        drives) the position stays unknown -- open() homes when homing is configured, and
        moves raise DriveError until it is known."""
        assumed = self.params.assume_position
        if assumed is not None:
            lo, hi = self.native_range
            if not lo <= float(assumed) <= hi:
                raise DriveError(f"drive {self.name!r}: assume_position = {assumed:g} is outside the drive's "
                                 f"range {lo:g}..{hi:g}; give the position the lens is really at")
            self._position = float(assumed)
            return
        default = self.default_position()
        if default is not None:
            self._position = self.clamp(default)
            return
        self._position = None
        self.position_uncertain = True
        self.uncertain_reason = "nothing saved"
        log.warning("drive %s: no saved position%s; the position is unknown%s", self.name,
                    f" in {self.state_path}" if self.state_path else "",
                    "; homing" if self.params.homing != "none" else
                    " -- moves are refused until it is known (home it, or give --assume-position POS)")

    def _restore(self) -> None:
        """Take the position from the state file on open (else the default position); a
        record left ``moving`` or outside the native range makes it uncertain."""
        st = read_state(self.state_path) if self.state_path else None
        if st is None:
            if self._position is None:
                self._start_unknown()
            return
        if st.get("drive") not in (None, self.kind):
            log.warning("drive state file %s belongs to a %s drive, not %s; ignoring it",
                        self.state_path, st.get("drive"), self.kind)
            self._start_unknown()
            return
        pos = float(st["position"])
        self._last_dir = int(st.get("last_dir", 0) or 0)
        self._homed = bool(st.get("homed", False))
        if st.get("moving"):
            self.position_uncertain = True
            target = st.get("target")
            self.uncertain_reason = (f"the last run stopped during a "
                                     f"{'homing' if st.get('homing') else 'move'} from {pos:g}"
                                     + (f" to {target:g}" if isinstance(target, (int, float)) else ""))
            log.warning("drive %s: the last run stopped during a move (%g -> %s); the position is uncertain%s",
                        self.name, pos, target,
                        "; homing" if self.params.homing != "none" else
                        "; moves are refused until it is homed or set (pifocus position --set POS)")
        elif st.get("uncertain"):
            self.position_uncertain = True
            self.uncertain_reason = f"the saved position {pos:g} is marked uncertain"
            log.warning("drive %s: the saved position %g is marked uncertain (an interrupted move or "
                        "an unknown start); %s", self.name, pos,
                        "homing" if self.params.homing != "none" else
                        "moves are refused until it is homed or set (pifocus position --set POS)")
        lo, hi = self.native_range
        if not (lo - 1e-6 <= pos <= hi + 1e-6):
            log.warning("drive %s: saved position %g is outside the range %g..%g; position uncertain",
                        self.name, pos, lo, hi)
            self.position_uncertain = True
            self.uncertain_reason = f"the saved position {pos:g} is outside the range {lo:g}..{hi:g}"
            pos = min(max(pos, lo), hi)
        self._position = pos
