"""Issue 14: no silent wrong results -- a bad folder does not abort a score batch, a failing
--plot does not lose the AF result, a bit-flipped model is refused."""

import json
import logging
import shutil

import cv2
import numpy as np
import pytest

from pifocus import cli
from pifocus.classify import ModelInfo, file_sha256, load_classifier
from pifocus.exc import ModelError


def test_score_goes_on_after_a_bad_folder(capsys, tmp_path):
    good1, bad, good2 = tmp_path / "a", tmp_path / "b_empty", tmp_path / "c"
    for d in (good1, bad, good2):
        d.mkdir()
    cv2.imwrite(str(good1 / "x.png"), np.zeros((48, 64), np.uint8))
    cv2.imwrite(str(good2 / "y.png"), np.zeros((48, 64), np.uint8))
    rc = cli.main(["score", str(good1), str(bad), str(tmp_path / "missing"), str(good2), "--no-cnn", "--json"])
    out, err = capsys.readouterr()
    paths = [json.loads(ln)["path"] for ln in out.splitlines() if ln.strip()]
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["x.png", "y.png"]
    assert rc == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("pifocus: error: 2 of 4 path(s) could not be scored")


def test_af_result_is_printed_even_when_the_plot_fails(capsys, tmp_path, monkeypatch):
    from pifocus.commands import autofocus as afcmd

    def broken(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(afcmd, "plot_result", broken)
    rc = cli.main(["autofocus", "--drive", "sim", "--no-cnn", "--size", "320x240", "--json",
                   "--plot", str(tmp_path / "curve.png")])
    out, err = capsys.readouterr()
    assert rc == 2
    res = json.loads(out.strip().splitlines()[-1])
    assert "final_position" in res and "success" in res
    assert "pifocus: error: --plot" in err and "No space left" in err and "result above is valid" in err


@pytest.fixture
def model_copy(tmp_path, tiny_model_path):
    m = tmp_path / "m.tflite"
    shutil.copy(tiny_model_path, m)
    meta = json.loads(tiny_model_path.with_suffix(".json").read_text())
    meta["sha256"] = file_sha256(m)
    m.with_suffix(".json").write_text(json.dumps(meta))
    return m


def test_model_with_matching_sha256_loads(model_copy):
    with load_classifier(model_copy) as c:
        assert c.tile_px > 0


def test_bit_flipped_model_is_a_model_error(model_copy):
    data = bytearray(model_copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupt or not the one its metadata describes"):
        load_classifier(model_copy)


def test_metadata_without_sha256_loads_with_a_warning(tmp_path, tiny_model_path, caplog):
    m = tmp_path / "m.tflite"
    shutil.copy(tiny_model_path, m)
    meta = json.loads(tiny_model_path.with_suffix(".json").read_text())
    meta.pop("sha256", None)
    m.with_suffix(".json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        ModelInfo.load(m.with_suffix(".json"))
        ModelInfo.load(m.with_suffix(".json"))
    assert caplog.text.count("has no sha256") == 1   # once per model file


def test_malformed_sha256_is_refused(model_copy):
    meta = json.loads(model_copy.with_suffix(".json").read_text())
    meta["sha256"] = "abc"
    model_copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="is not a SHA-256"):
        ModelInfo.load(model_copy.with_suffix(".json"))
