"""The one place CLI output goes through.

Library code logs; commands talk to the user through a :class:`Console`: JSON lines on
stdout with ``--json``, readable lines otherwise, progress bars only on a terminal, logs
and errors on stderr.
"""

import json
import math
import sys
from typing import Iterable, Optional


def _finite(obj):
    """``obj`` with every NaN or infinite float replaced by None (JSON ``null``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class Console:
    """CLI output.

    Args:
        json_mode: print machine-readable JSON (one object per line) instead of text.
        stream: where results go (default stdout).
        err: where progress and notes go (default stderr).
    """

    def __init__(self, json_mode: bool = False, stream=None, err=None):
        self.json_mode = json_mode
        self.stream = stream if stream is not None else sys.stdout
        self.err = err if err is not None else sys.stderr

    @property
    def interactive(self) -> bool:
        """True when stderr is a terminal (progress bars and in-place updates make sense)."""
        return hasattr(self.err, "isatty") and self.err.isatty()

    def result(self, obj: dict, text: Optional[str] = None) -> None:
        """One result: a JSON line in JSON mode, else ``text`` (or a key: value rendering)."""
        if self.json_mode:
            try:
                line = json.dumps(obj, separators=(",", ":"), allow_nan=False)
            except ValueError:  # NaN/inf (e.g. an AUC with one class) is not JSON: null
                line = json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False)
            self.stream.write(line + "\n")
        else:
            if text is None:
                text = "\n".join(f"{k}: {v}" for k, v in obj.items())
            self.stream.write(text + "\n")
        self.stream.flush()

    def line(self, text: str) -> None:
        """A line for people: stdout in text mode, stderr in JSON mode (stdout stays JSON)."""
        out = self.err if self.json_mode else self.stream
        out.write(text + "\n")
        out.flush()

    def note(self, text: str) -> None:
        """A side note on stderr (never mixes into results)."""
        self.err.write(text + "\n")
        self.err.flush()

    def progress(self, iterable: Iterable, total: Optional[int] = None, desc: str = "", unit: str = "frame"):
        """Wrap ``iterable`` in a progress bar when attached to a terminal."""
        if not self.interactive:
            return iterable
        try:
            from tqdm import tqdm
        except ImportError:
            return iterable
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=self.err, leave=False)
