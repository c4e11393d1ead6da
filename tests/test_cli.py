"""The pifocus command line: outputs other programs rely on, and one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pifocus.cli import main

SIM = ["--source", "sim", "--size", "320x240"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_import_pifocus_pulls_in_no_heavy_or_hardware_modules():
    code = ("import sys, pifocus, pifocus.cli, pifocus.sources, pifocus.focus, pifocus.classify, "
            "pifocus.pipeline, pifocus.config; "
            "bad = [m for m in ('picamera2', 'tensorflow', 'keras', 'lgpio', 'RPi') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_run_json_one_object_per_frame(capsys, tiny_model_path):
    code, out, err = run_cli(capsys, "run", *SIM, "--frames", "6", "--json", "--model", str(tiny_model_path))
    assert code == 0, err
    objs = json_lines(out)
    frames, summary = objs[:-1], objs[-1]
    assert len(frames) == 6 and summary["summary"] and summary["frames"] == 6
    for o in frames:
        assert {"sharpness", "p_in_focus", "in_focus", "meter", "lens_position", "timings_ms"} <= set(o)
    assert [o["frame"] for o in frames] == list(range(6))


def test_run_text_demo_shows_the_mock_led(capsys, tiny_model_path):
    code, out, err = run_cli(capsys, "run", *SIM, "--frames", "61", "--model", str(tiny_model_path))
    assert code == 0, err
    assert "mock" in out.lower()  # says the LED is a mock pin off the Pi
    assert "IN FOCUS" in out and "soft" in out or "no detail" in out
    assert "LED on" in out and "LED off" in out


def test_run_laplacian_only(capsys):
    code, out, err = run_cli(capsys, "run", *SIM, "--frames", "3", "--json", "--no-cnn", "--no-outputs")
    assert code == 0, err
    assert json_lines(out)[0]["mode"] == "laplacian"


def test_score_json_fields(capsys, tmp_path, tiny_model_path):
    import cv2
    from pifocus.sources.simulated import SimulatedSource
    src = SimulatedSource(width=320, height=240)
    for pos in (500, 800):
        src.lens_position = pos
        cv2.imwrite(str(tmp_path / f"img{pos}.png"), src.render(pos))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    code, out, err = run_cli(capsys, "score", str(tmp_path), "--json", "--model", str(tiny_model_path),
                             "--heatmap", str(tmp_path / "maps"))
    assert code == 0, err
    objs = {o["path"].rsplit("/", 1)[-1]: o for o in json_lines(out)}
    assert set(objs) == {"img500.png", "img800.png"}
    for o in objs.values():
        assert {"path", "sharpness", "p_in_focus", "in_focus", "tiles"} <= set(o)
        assert {"rows", "cols", "p", "textured"} <= set(o["tiles"])
        assert len(o["tiles"]["p"]) == o["tiles"]["rows"]
    assert objs["img500.png"]["in_focus"] and not objs["img800.png"]["in_focus"]
    assert "1 unreadable file(s) skipped" in err
    assert len(list((tmp_path / "maps").glob("*_heatmap.jpg"))) == 2  # colour JPEGs


def test_bench_json_keys_and_ratios(capsys, tiny_model_path):
    code, out, err = run_cli(capsys, "bench", *SIM, "--frames", "4", "--warmup", "1", "--json",
                             "--model", str(tiny_model_path))
    assert code == 0, err
    r = json_lines(out)[0]
    for k in ("baseline_ms", "laplacian_only_ms", "full_ms", "laplacian_only_ratio", "full_ratio",
              "peak_rss_mb", "tiles_to_cnn_per_frame"):
        assert r[k] is not None and r[k] >= 0, k
    assert r["laplacian_only_ratio"] == pytest.approx(r["laplacian_only_ms"] / r["baseline_ms"], rel=0.01)
    assert r["stages_ms"]["full"]["cnn"]["p95"] >= r["stages_ms"]["full"]["cnn"]["median"]


def test_record_then_replay_keeps_positions(capsys, tmp_path):
    out_dir = tmp_path / "rec"
    code, out, err = run_cli(capsys, "record", *SIM, "--frames", "4", "--out", str(out_dir))
    assert code == 0, err
    assert (out_dir / "sweep.csv").read_text().splitlines()[0].startswith("file,position")
    code, out, err = run_cli(capsys, "run", "--source", str(out_dir), "--json", "--no-cnn", "--no-outputs")
    assert code == 0, err
    objs = json_lines(out)
    assert [o["lens_position"] for o in objs[:-1]] == pytest.approx([0, 1000 / 60, 2000 / 60, 3000 / 60], abs=0.01)
    # Recording into a folder that is not empty is refused (never overwrite a recording).
    code, out, err = run_cli(capsys, "record", *SIM, "--frames", "1", "--out", str(out_dir))
    assert code == 2 and "not empty" in err


@pytest.mark.parametrize("argv, match", [
    (["run", "--source", "bogus"], "unknown source 'bogus'"),
    (["run", "--source", "./no/such/dir"], "no such folder or file"),
    (["run", "--source", "missing.mp4", "--no-cnn"], "missing.mp4"),
    (["score", "/no/such/file.jpg", "--no-cnn"], "no such file"),
    (["run", "--source", "sim", "--model", "/no/model.tflite"], "model file '/no/model.tflite' not found"),
])
def test_errors_are_one_line_with_nonzero_status(capsys, argv, match):
    code, out, err = run_cli(capsys, *argv)
    assert code != 0
    lines = [l for l in err.splitlines() if l.startswith("pifocus: error:")]
    assert len(lines) == 1 and match in lines[0], err
    assert "Traceback" not in err


def test_empty_folder_error(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(capsys, "run", "--source", str(tmp_path / "empty"), "--no-cnn")
    assert code == 2 and "pifocus: error:" in err and "empty" in err


def test_bad_config_error_names_key(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[analysis]\ngate_facter = 2\n")
    code, out, err = run_cli(capsys, "run", "--config", str(cfg))
    assert code == 2 and "analysis.gate_facter; did you mean 'gate_factor'" in err


def test_wrong_model_shape_error(capsys, tmp_path, tiny_model_path):
    import shutil
    from pifocus.classify import ModelInfo
    p = tmp_path / "m.tflite"
    shutil.copy(tiny_model_path, p)
    ModelInfo(tile_px=64).save(p.with_suffix(".json"))
    code, out, err = run_cli(capsys, "run", *SIM, "--frames", "1", "--model", str(p))
    assert code == 2 and "does not match its metadata" in err


def test_help_for_every_command(capsys):
    from pifocus.cli import build_parser
    _, modules = build_parser()
    assert {"run", "score", "bench", "record"} <= set(modules)
    for name in modules:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "--json" in out


def test_debug_shows_traceback(capsys):
    # Without --debug a deliberate error is one line; --debug adds the traceback to the log.
    code, out, err = run_cli(capsys, "run", "--source", "bogus", "--debug")
    assert code == 2 and "Traceback" in err
