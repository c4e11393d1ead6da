"""``pifocus convert``: Keras/SavedModel focus model -> full-int8 TFLite + metadata, self-checked.

Needs TensorFlow (``pip install 'pifocus[train]'``), imported only when the command runs.
The work is done by :mod:`pifocus.classify.convert`.
"""

import contextlib
import os
import sys

from ..classify import convert as _convert

HELP = "convert a Keras/SavedModel focus model to int8 TFLite (needs TensorFlow)"
DESCRIPTION = """\
Quantize a desktop-trained focus model (.keras, legacy .h5, or a SavedModel folder) to
full-int8 TFLite with a representative dataset from your calibration images or tiles, write
the model and its metadata JSON, then check int8 against float on held-back tiles, the file
size and the per-tile latency under LiteRT with one thread.

  pifocus convert model.keras --calib photos/ --out my_focus_int8.tflite
  pifocus convert saved_model_dir --calib tiles.npz --out m.tflite --quantize float16
"""


def add_arguments(p):
    _convert.add_arguments(p)


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to stdout -- Python prints and the C/C++ libraries' writes to
    file descriptor 1 (TensorFlow, Keras' export summary) -- to stderr for the duration, so
    that ``--json`` leaves only JSON on stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (embedded use): Python-level redirect only
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run(args, console) -> int:
    with stdout_to_stderr():   # TensorFlow prints its own output; stdout is for the result
        report = _convert.run_args(args)
    console.result(report, _convert.report_text(report, args.out))
    return 0
