"""Issue 14, item 13: ``pifocus convert --json`` leaves only JSON on stdout -- TensorFlow's and
Keras' own output (Python prints and C++ writes to file descriptor 1) goes to stderr."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_stdout_to_stderr_moves_python_and_fd_writes():
    code = ("import os, sys\n"
            "from pifocus.commands.convert import stdout_to_stderr\n"
            "with stdout_to_stderr():\n"
            "    print('python print')\n"
            "    os.write(1, b'c level write\\n')\n"
            "print('after')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "after\n"
    assert "python print" in p.stderr and "c level write" in p.stderr


def test_convert_json_stdout_is_only_json(tmp_path):
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    import numpy as np
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 1), name="tile")
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, activation="relu")(inp))
    keras.Model(inp, layers.Dense(1)(x)).save(tmp_path / "tiny.keras")
    np.save(tmp_path / "calib.npy", np.random.default_rng(1).integers(0, 256, (80, 16, 16), dtype=np.uint8))
    p = subprocess.run([sys.executable, "-m", "pifocus", "convert", str(tmp_path / "tiny.keras"), "--calib",
                        str(tmp_path / "calib.npy"), "--out", str(tmp_path / "t.tflite"), "--json"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert len(lines) == 1, p.stdout[:1000]
    assert json.loads(lines[0])["quantize"] == "int8"
