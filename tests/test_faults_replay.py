"""Issue 14, item 12: corrupt frames in a replayed sweep are never mislabelled in the AF curve
-- the replay lens stops only at frames that decode, so every sample's position is the
position of the frame that was actually judged."""

import cv2
import pytest

from pifocus.autofocus import AutofocusParams, autofocus
from pifocus.drive import open_drive
from pifocus.focus import AnalysisParams, FocusAnalyzer
from pifocus.sources.simulated import SimulatedSource

POSITIONS = [float(p) for p in range(0, 1001, 50)]
CORRUPT = (400.0, 450.0)          # next to the sharpest frame (focus at 430)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    rows = ["file,position"]
    with SimulatedSource(width=160, height=120, focus_position=430.0) as src:
        for i, p in enumerate(POSITIONS):
            cv2.imwrite(str(d / f"f{i:03d}.png"), src.render(p))
            rows.append(f"f{i:03d}.png,{p:g}")
    (d / "sweep.csv").write_text("\n".join(rows) + "\n")
    for p in CORRUPT:
        (d / f"f{POSITIONS.index(p):03d}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return d


@pytest.mark.parametrize("strategy", ["sweep", "model", "blur"])
def test_af_curve_positions_are_the_frames_shown(sweep, strategy):
    drive = open_drive(f"replay:{sweep}")
    shown = []
    with drive:
        src = drive.source
        read = src.read

        def spy():
            f = read()
            shown.append((drive.position, f.lens_position))
            return f
        src.read = spy
        r = autofocus(drive, FocusAnalyzer(AnalysisParams(use_cnn=False)), AutofocusParams(strategy=strategy))
    mislabelled = [(at, frame) for at, frame in shown if at != frame]
    assert not mislabelled, mislabelled
    assert not set(CORRUPT) & {c[0] for c in r.curve}
    assert r.final_position not in CORRUPT


def test_a_move_to_a_corrupt_frame_stops_at_the_nearest_readable_one(sweep, caplog):
    with open_drive(f"replay:{sweep}") as drive:
        assert drive.move_to(450.0) in (350.0, 500.0)
        assert drive.source.read().lens_position == drive.position
    assert "unreadable" in caplog.text
