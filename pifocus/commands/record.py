"""``pifocus record``: save frames (and their lens positions) in the replay format."""

import csv
import io
from pathlib import Path

from . import _common
from .. import storage
from ..argtypes import bounded_int
from ..exc import ConfigError, StorageError

CSV_HEADER = ["file", "position", "timestamp_ns", "exposure_us", "gain"]
FRAMES = bounded_int(1, 1_000_000)

HELP = "record frames from a source into a folder (images + sweep.csv, the replay format)"
DESCRIPTION = """\
Record luma frames as PNG (lossless: JPEG artefacts change sharpness) plus sweep.csv with
file, position, timestamp_ns, exposure_us, gain -- the folder format `--source DIR` and the
replay focus drive read back.

  pifocus record --source picamera2 --frames 50 --out rig-frames/

Frames and sweep.csv are written atomically: when the disk fills up the recording stops
with "disk full" and the path, and the folder keeps the complete frames, listed in
sweep.csv (no partial file is left).

With a focus drive, record a sweep: one frame at each lens position FROM, FROM+STEP, ... TO
(each approached from the drive's approach side, after its settle frames), in the replay
format, so the rig's lens is recorded once and autofocus is tuned on the bench with
--drive replay:DIR:

  pifocus record --drive stepper --source picamera2 --sweep 0:2000:40 --out lens1/
  pifocus autofocus --drive replay:lens1/ --json
"""


def add_arguments(p):
    _common.add_config_arg(p)
    _common.add_source_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (created; must be empty)")
    p.add_argument("--frames", type=FRAMES, default=30, metavar="N", help=f"frames to record ({FRAMES.range}) [30]")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="image format [png]")
    add_sweep_arguments(p)


def write_frames(frames, out_dir, fmt="png", console=None, total=None) -> int:
    """Write frames and sweep.csv into ``out_dir``; returns the number written.

    Every frame is encoded in memory and written atomically (``.part`` + rename), and
    ``sweep.csv`` is rewritten atomically before the first frame and after every frame, so
    an interrupted recording -- or one that fills the disk -- is still a valid replay folder
    listing exactly the complete frames in it.

    Raises:
        StorageError: a frame or sweep.csv could not be written (``disk full`` with the path);
            what was recorded so far stays, valid, and no partial file is left.
        ConfigError: a frame cannot be encoded as ``fmt``.
    """
    import cv2

    out = Path(out_dir)
    rows = []
    _write_csv(out, rows, 0)
    it = console.progress(frames, total=total, desc="record") if console is not None else frames
    for i, frame in enumerate(it):
        name = f"frame_{i:05d}.{fmt}"
        ok, buf = cv2.imencode("." + fmt, frame.luma)
        if not ok:
            raise ConfigError(f"record: cannot encode frame {i} as {fmt}; try --format png")
        try:
            storage.atomic_write(out / name, buf.tobytes(), what="record: ")
        except StorageError as e:
            raise _kept(e, out, i) from None
        rows.append([name, "" if frame.lens_position is None else f"{frame.lens_position:g}",
                     frame.timestamp_ns, "" if frame.exposure_us is None else frame.exposure_us,
                     "" if frame.analogue_gain is None else f"{frame.analogue_gain:g}"])
        try:
            _write_csv(out, rows, i + 1)
        except StorageError:
            rows.pop()
            storage.remove_quietly(out / name)  # complete, but not listed: it goes too
            raise
    return len(rows)


def _write_csv(out: Path, rows, n: int) -> None:
    """Rewrite ``out/sweep.csv`` atomically with ``rows``.

    Raises:
        StorageError: it could not be written; the message says how many frames the folder
            keeps (the previous sweep.csv, valid, stays).
    """
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(CSV_HEADER)
    w.writerows(rows)
    try:
        storage.atomic_write(out / "sweep.csv", text.getvalue().encode(), what="record: ")
    except StorageError as e:
        raise _kept(e, out, max(0, n - 1)) from None


def _kept(e: StorageError, out: Path, n: int) -> StorageError:
    """``e`` with what the folder still holds."""
    listed = ", listed in sweep.csv" if (out / "sweep.csv").exists() else ""
    return StorageError(f"{e} ({n} complete frame(s) kept in {out}{listed})", path=e.path, disk_full=e.disk_full)


def prepare_out(path) -> Path:
    """Create the output folder; refuse a non-empty one (never overwrite a recording)."""
    out = Path(path)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"record: --out {str(out)!r} is not empty; choose a new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage.storage_error(e, out, what="record: --out: ") from None
    return out


def run(args, console) -> int:
    cfg = _common.load_config(args)
    if getattr(args, "sweep", None) or getattr(args, "drive", None):
        return record_sweep(args, cfg, console)
    if args.frames < 1:
        raise ConfigError(f"record: --frames {args.frames} must be >= 1")
    out = prepare_out(args.out)
    source = _common.make_source(cfg)
    with source:
        frames = (f for _, f in zip(range(args.frames), source))
        n = write_frames(frames, out, args.format, console, total=args.frames)
    console.result({"out": str(out), "frames": n, "skipped": source.skipped},
                   f"recorded {n} frame(s) into {out}")
    return 0


# -- sweep recording with a focus drive ---------------------------------------------------
# (`--drive DRIVE --sweep FROM:TO:STEP`; the drive side lives in pifocus.drive and
# pifocus.commands.autofocus, which this block only calls.)

def add_sweep_arguments(p) -> None:
    """``--drive`` (and the drive flags) and ``--sweep FROM:TO:STEP``."""
    from .autofocus import add_drive_args

    add_drive_args(p)
    p.add_argument("--sweep", metavar="FROM:TO:STEP",
                   help="with a drive: record one frame at each lens position FROM, FROM+STEP, ... TO "
                        "(drive units; --frames is ignored; a negative FROM needs --sweep=FROM:TO:STEP)")


def parse_sweep(text: str):
    """``FROM:TO:STEP`` -> the list of positions (TO included when on the grid)."""
    import math

    try:
        a, b, step = (float(v) for v in str(text).split(":"))
    except ValueError:
        raise ConfigError(f"record: --sweep {text!r}: give FROM:TO:STEP in drive units, e.g. 0:2000:50") from None
    if not all(math.isfinite(v) for v in (a, b, step)) or step == 0 or (b - a) * step < 0:
        raise ConfigError(f"record: --sweep {text!r}: STEP must be non-zero and lead from FROM to TO "
                          "(e.g. 0:2000:50 or 2000:0:-50)")
    n = int(math.floor((b - a) / step + 1e-9)) + 1
    if n > 100000:
        raise ConfigError(f"record: --sweep {text!r} gives {n} positions; at most 100000")
    return [a + i * step for i in range(n)]


def record_sweep(args, cfg, console) -> int:
    """Move the drive through the sweep and record a frame at each position."""
    import dataclasses

    from .autofocus import open_configured_drive

    if not getattr(args, "sweep", None):
        raise ConfigError("record: --drive needs --sweep FROM:TO:STEP (the lens positions to record)")
    positions = parse_sweep(args.sweep)
    drive, source = open_configured_drive(cfg, args)
    with drive:
        drive.check_range(min(positions), max(positions), f"record: --sweep {args.sweep}")
        out = prepare_out(args.out)
        own = source is not drive.source
        if own:
            source.open()
        try:
            settle = int(drive.params.settle_frames) + int(getattr(drive, "pipeline_frames", 0))
            fresh = getattr(source, "request_fresh", None)

            def frames():
                for pos in positions:
                    drive.move_to(pos, approach=True)
                    if fresh is not None:
                        fresh()
                    for _ in range(settle):
                        source.read()
                    frame = source.read()
                    yield dataclasses.replace(frame, lens_position=drive.position)

            n = write_frames(frames(), out, args.format, console, total=len(positions))
        finally:
            if own:
                source.close()
    console.result({"out": str(out), "frames": n, "drive": drive.name, "units": drive.units,
                    "positions": [positions[0], positions[-1]], "skipped": source.skipped},
                   f"recorded a {n}-frame sweep {positions[0]:g}..{positions[-1]:g} {drive.units} with "
                   f"drive {drive.name} into {out} (replay it: --drive replay:{out})")
    return 0
