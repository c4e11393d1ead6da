"""Bounded numeric command-line values: one ``argparse`` type helper for every option.

``bounded_int(lo, hi)`` / ``bounded_float(lo, hi)`` return a converter that argparse calls
on the option's text; ``inf``, ``nan`` and anything outside ``lo..hi`` are refused with a
message naming the value and the allowed range.  The converter's :attr:`range` (e.g.
``"1..1000"``) goes into the option's ``--help``::

    FRAMES = bounded_int(1, 100_000)
    p.add_argument("--frames", type=FRAMES, help=f"frames to time ({FRAMES.range}) [60]")
"""

import argparse
import math


class _Bounded:
    """An argparse ``type=``: text -> number within ``lo..hi``."""

    def __init__(self, kind, lo, hi):
        self.kind, self.lo, self.hi = kind, lo, hi
        self.__name__ = "integer" if kind is int else "number"  # argparse names it in errors

    @property
    def range(self) -> str:
        """The allowed range, for ``--help``."""
        return f"{self.lo:g}..{self.hi:g}"

    def __call__(self, text: str):
        what = "an integer" if self.kind is int else "a finite number"
        try:
            value = int(text, 10) if self.kind is int else float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}; allowed: {self.range}") from None
        if self.kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}; allowed: {self.range}")
        if not self.lo <= value <= self.hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range; allowed: {self.range}")
        return value


def bounded_int(lo: int, hi: int) -> _Bounded:
    """An argparse type for integers in ``lo..hi`` (``.range`` for the help text)."""
    return _Bounded(int, lo, hi)


def bounded_float(lo: float, hi: float) -> _Bounded:
    """An argparse type for finite numbers in ``lo..hi`` (``.range`` for the help text)."""
    return _Bounded(float, lo, hi)


#: Shared bounds: drive positions (any drive's units), seeds.
POSITION = bounded_float(-1e9, 1e9)
SEED = bounded_int(0, 2**32 - 1)
