#!/usr/bin/env python3
"""Evaluate a focus model against a tuned Laplacian baseline (see pifocus/classify/evaluate.py).

    python tools/evaluate.py --tiles build/tiles.npz --split val --plot build/roc.png
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pifocus.classify.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
