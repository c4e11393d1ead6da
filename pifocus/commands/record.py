"""``pifocus record``: save frames (and their lens positions) in the replay format."""

import csv
import os
from pathlib import Path

from . import _common
from ..exc import ConfigError

HELP = "record frames from a source into a folder (images + sweep.csv, the replay format)"
DESCRIPTION = """\
Record luma frames as PNG (lossless: JPEG artefacts change sharpness) plus sweep.csv with
file, position, timestamp_ns, exposure_us, gain -- the folder format `--source DIR` and the
replay focus drive read back.

  pifocus record --source picamera2 --frames 50 --out rig-frames/
"""


def add_arguments(p):
    _common.add_config_arg(p)
    _common.add_source_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (created; must be empty)")
    p.add_argument("--frames", type=int, default=30, metavar="N", help="frames to record [30]")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="image format [png]")


def write_frames(frames, out_dir, fmt="png", console=None, total=None) -> int:
    """Write frames and sweep.csv into ``out_dir``; returns the number written.

    ``sweep.csv`` is rewritten atomically after every frame, so an interrupted recording
    is still a valid replay folder.
    """
    import cv2

    out = Path(out_dir)
    rows = []
    header = ["file", "position", "timestamp_ns", "exposure_us", "gain"]
    it = console.progress(frames, total=total, desc="record") if console is not None else frames
    for i, frame in enumerate(it):
        name = f"frame_{i:05d}.{fmt}"
        if not cv2.imwrite(str(out / name), frame.luma):
            raise ConfigError(f"record: cannot write {out / name}; check --out and free space")
        rows.append([name, "" if frame.lens_position is None else f"{frame.lens_position:g}",
                     frame.timestamp_ns, "" if frame.exposure_us is None else frame.exposure_us,
                     "" if frame.analogue_gain is None else f"{frame.analogue_gain:g}"])
        tmp = out / ".sweep.csv.tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out / "sweep.csv")
    return len(rows)


def prepare_out(path) -> Path:
    """Create the output folder; refuse a non-empty one (never overwrite a recording)."""
    out = Path(path)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"record: --out {str(out)!r} is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def run(args, console) -> int:
    cfg = _common.load_config(args)
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
