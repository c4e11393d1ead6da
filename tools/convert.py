#!/usr/bin/env python3
"""Convert a Keras/SavedModel focus model to full-int8 TFLite (see pifocus/classify/convert.py).

    python tools/convert.py build/focusnet.keras --calib build/tiles.npz --out models/focus_cnn_int8.tflite
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pifocus.classify.convert import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
