"""Options and builders shared by the subcommands: config file + flags -> objects."""

import argparse
import dataclasses
import logging
import math
import os
from typing import Optional, Tuple

from .. import config as cfgmod
from ..exc import ConfigError
from ..argtypes import SEED, bounded_int

THREADS = bounded_int(1, 64)

log = logging.getLogger(__name__)


def parse_roi(text: str) -> Tuple[float, float, float, float]:
    """Parse ``--roi X,Y,W,H`` (normalized 0..1)."""
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4 or not all(0.0 <= v <= 1.0 for v in vals):  # also refuses nan, inf
        raise argparse.ArgumentTypeError(
            f"--roi {text!r}: give four numbers X,Y,W,H in normalized frame coordinates, e.g. 0.3,0.3,0.4,0.4")
    return vals


def parse_size(text: str) -> Tuple[int, int]:
    """Parse ``--size WxH``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: give WIDTHxHEIGHT, e.g. 2028x1520") from None
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise argparse.ArgumentTypeError(f"--size {text!r}: width and height must be 16..16384 pixels, "
                                         "e.g. 2028x1520")
    return w, h


def parse_grid(text: str) -> Tuple[int, int]:
    """Parse ``--grid ROWSxCOLS``."""
    try:
        r, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--grid {text!r}: give ROWSxCOLS, e.g. 6x8") from None
    if not (1 <= r <= 64 and 1 <= c <= 64):
        raise argparse.ArgumentTypeError(f"--grid {text!r}: rows and columns must be 1..64, e.g. 6x8")
    return r, c


def parse_option(text: str):
    """Parse ``KEY=VALUE``; the value as TOML would read it (int, float, bool, else string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"-o {text!r}: give KEY=VALUE, e.g. -o analogue_gain=8")
    v = value.strip()
    for conv in (int, float):
        try:
            num = conv(v)
        except ValueError:
            continue
        if not math.isfinite(num) or abs(num) > 1e12:
            raise argparse.ArgumentTypeError(f"-o {text!r}: {v} is not a usable number; give a finite "
                                             "value within -1e12..1e12")
        return key.strip(), num
    if v.lower() in ("true", "false"):
        return key.strip(), v.lower() == "true"
    return key.strip(), v


def add_config_arg(p: argparse.ArgumentParser) -> None:
    """``--config FILE`` (also ``$PIFOCUS_CONFIG``)."""
    p.add_argument("--config", metavar="FILE", default=os.environ.get("PIFOCUS_CONFIG"),
                   help="TOML config file (see systemd/pifocus.toml); flags override it "
                        "[default: $PIFOCUS_CONFIG or built-in defaults]")


def add_source_args(p: argparse.ArgumentParser, default: Optional[str] = None) -> None:
    """``--source SRC`` and the sim/camera size."""
    p.add_argument("--source", metavar="SRC", default=default,
                   help="sim[:IMAGE], picamera2[:N], opencv:INDEX_OR_URL, a folder of images or a "
                        "video file [default: the config's [source] name, else sim]")
    p.add_argument("--size", type=parse_size, metavar="WxH",
                   help="frame size for sim/camera sources, e.g. 2028x1520")
    p.add_argument("--seed", type=SEED, help=f"seed of the simulated scene and noise ({SEED.range})")
    p.add_argument("-o", "--source-option", action="append", type=parse_option, default=[],
                   metavar="KEY=VALUE",
                   help="an option for the source, as in the config's [source] table "
                        "(repeatable), e.g. -o hold_position=500 -o analogue_gain=16")


def add_analysis_args(p: argparse.ArgumentParser) -> None:
    """``--roi``, ``--grid``, ``--no-cnn``, ``--model``, ``--threads``."""
    p.add_argument("--roi", type=parse_roi, metavar="X,Y,W,H",
                   help="subject region in normalized frame coordinates (0-1) "
                        "[default: centre-weighted central 60%%]")
    p.add_argument("--grid", type=parse_grid, metavar="ROWSxCOLS", help="tile grid over the ROI [6x8]")
    p.add_argument("--no-cnn", action="store_true",
                   help="Laplacian-only analysis: skip the CNN (for comparison, or with no interpreter)")
    p.add_argument("--model", metavar="FILE.tflite", help="focus model [default: the shipped int8 model]")
    p.add_argument("--threads", type=THREADS, metavar="N", help=f"LiteRT interpreter threads ({THREADS.range}) [1]")


def load_config(args) -> cfgmod.Config:
    """The config file (if any) with command-line flags applied on top."""
    cfg = cfgmod.load(args.config) if getattr(args, "config", None) else cfgmod.default()
    src = cfg.source
    opts = dict(src.options)
    if getattr(args, "source", None):
        if args.source != src.name:
            opts = {}  # options of the configured source do not apply to another one
        src = dataclasses.replace(src, name=args.source)
    if getattr(args, "size", None):
        opts["width"], opts["height"] = args.size
    if getattr(args, "seed", None) is not None:
        opts["seed"] = args.seed
    for key, value in getattr(args, "source_option", None) or []:
        opts[key] = value
    src = dataclasses.replace(src, options=opts)

    a = cfg.analysis
    changes = {}
    if getattr(args, "roi", None) is not None:
        changes["roi"] = args.roi
    if getattr(args, "grid", None):
        changes["rows"], changes["cols"] = args.grid
    if getattr(args, "no_cnn", False):
        changes["use_cnn"] = False
    if getattr(args, "model", None):
        changes["model"] = args.model
    if getattr(args, "threads", None):
        changes["num_threads"] = args.threads
    if changes:
        try:
            a = dataclasses.replace(a, **changes)
        except ConfigError as e:
            raise ConfigError(f"command line: {e}") from e
    return cfg.replace(source=src, analysis=a)


def make_source(cfg: cfgmod.Config):
    """The configured :class:`~pifocus.sources.FrameSource` (not yet opened)."""
    from ..sources import open_source
    return open_source(cfg.source.name, max_pixels=cfg.source.max_pixels, **cfg.source.options)


def make_analyzer(cfg: cfgmod.Config):
    """The configured :class:`~pifocus.focus.FocusAnalyzer` (loads the model)."""
    from ..focus import FocusAnalyzer
    return FocusAnalyzer(cfg.analysis)


def make_outputs(cfg: cfgmod.Config, enabled: bool = True):
    """The configured output group, or None when outputs are unavailable/disabled."""
    if not enabled or cfg.outputs is None:
        return None
    from ..outputs import make_outputs as _make
    return _make(cfg.outputs)
