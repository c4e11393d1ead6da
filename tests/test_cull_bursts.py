"""pifocus.cull bursts judged on one shared subject region: the pure geometry on literal
values, and a synthetic two-photo burst where each photo on its own would be judged on a
different region (focus hunted from the subject to the background), so per-photo picking
would call the wrong photo best."""

import math
import os

import numpy as np
import pytest

from pifocus.cull import CullParams, CullResult, Subject
from pifocus.cull import bursts
from pifocus.cull.batch import score_photos
from pifocus.focus import AnalysisParams
from pifocus.focus.blurest import dead_leaves
from pifocus.sources.simulated import defocus

cv2 = pytest.importorskip("cv2")


def _r(path, box, kind="detail", conf=1.0, t=0.0, w=1200, h=800, faces=0):
    return CullResult(path=path, width=w, height=h, time_s=t, time_source="exif",
                      subject=Subject(box, kind, faces, conf), blur_px=0.5, blur_source="blurest",
                      edge_sigma_px=0.8, motion_blur=False, motion_px=0.0, motion_angle_deg=math.nan,
                      p_in_focus=0.9, sharpness=500.0, focus_verdict="in_focus", noise_sigma_dn=2.0,
                      snr_db=35.0, ev_offset=0.0, clip_high_pct=0.0, clip_low_pct=0.0)


def test_iou_and_map_box_literal():
    assert bursts.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert bursts.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert bursts.iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert bursts.iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    assert bursts.map_box((100, 200, 300, 400), (1200, 800), (1200, 800)) == (100, 200, 300, 400)
    assert bursts.map_box((100, 200, 300, 400), (1200, 800), (2400, 1600)) == (200, 400, 600, 800)
    assert bursts.map_box((1000, 700, 300, 200), (1200, 800), (600, 400)) == (450, 300, 150, 100)  # kept inside


def test_reference_is_the_most_trusted_detection():
    rs = [_r("a", (0, 0, 300, 300), "detail", 50.0), _r("b", (0, 0, 300, 300), "face", 6.0),
          _r("c", (0, 0, 300, 300), "face", 9.0), _r("d", (0, 0, 300, 300), "centre", 0.0)]
    assert bursts.reference_index(rs) == 2            # a face beats detail; more neighbours win
    rs.append(_r("e", (0, 0, 300, 300), "eyes", 5.0))
    assert bursts.reference_index(rs) == 4            # eyes found: the most trusted kind
    assert bursts.reference_index([_r("a", (0, 0, 300, 300), conf=3.0),
                                   _r("b", (0, 0, 400, 400), conf=3.0)]) == 1  # tie: larger region


def test_shared_regions_literal():
    rs = [_r("a", (100, 240, 280, 280), conf=55.0, t=0.0),
          _r("b", (800, 240, 280, 280), conf=5.0, t=0.5),        # elsewhere: judged again on a's
          _r("c", (104, 242, 280, 280), conf=40.0, t=1.0),       # same region within jitter
          _r("d", (100, 240, 280, 280), conf=1.0, t=1.5, w=800, h=1200, faces=2),  # portrait frame
          _r("e", (800, 240, 280, 280), conf=9.0, t=60.0)]       # alone: no burst
    out = bursts.shared_regions(rs, 2.0)
    assert out[0] is None and out[2] is None and out[3] is None and out[4] is None
    assert out[1].box_px == (100, 240, 280, 280) and out[1].shared_from == "a"
    assert out[1].kind == "detail" and out[1].confidence == 55.0
    assert rs[1].subject.box_px == (800, 240, 280, 280)  # pure: results untouched
    assert bursts.shared_regions(rs, 0.0) == [None] * 5   # no bursts
    big = [_r("a", (0, 0, 300, 300), "face", 9.0, w=1200, h=800, faces=1),
           _r("b", (900, 500, 300, 300), t=0.1, w=2400, h=1600, faces=0)]
    s = bursts.shared_regions(big, 2.0)[1]
    assert s.box_px == (0, 0, 600, 600) and s.kind == "face" and s.faces == 0


def _photo(a_blur_px, b_blur_px, seed=0):
    """1200x800: a high-contrast textured subject A on the left, a fainter textured
    background B on the right, each disk-defocused by its own radius."""
    rng = np.random.default_rng(seed)
    img = np.full((800, 1200), 0.5, np.float32)
    img[240:560, 80:400] = dead_leaves(320, seed=1, n_discs=1500)
    img[240:560, 800:1120] = 0.5 + 0.4 * (dead_leaves(320, seed=2, n_discs=1500) - 0.5)
    out = img.copy()
    out[:, :600] = (defocus(img, a_blur_px) if a_blur_px else img)[:, :600]
    out[:, 600:] = (defocus(img, b_blur_px) if b_blur_px else img)[:, 600:]
    return np.clip(out * 255 + rng.normal(0, 1.5, out.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def hunted_burst(tmp_path_factory):
    """Photo 1 focused on A (0.7 px; B 4 px), photo 2 half a second later on B (A 4 px)."""
    d = tmp_path_factory.mktemp("burst")
    paths = []
    for i, (a, b) in enumerate(((0.7, 4.0), (4.0, 0.0))):
        p = str(d / f"IMG_{i + 1}.png")
        cv2.imwrite(p, _photo(a, b))
        os.utime(p, (1e9 + 0.5 * i, 1e9 + 0.5 * i))
        paths.append(p)
    return paths


def _left(box):
    return box[0] + box[2] / 2 < 600


@pytest.mark.parametrize("jobs", [1, 2])
def test_burst_is_judged_on_one_region(hunted_burst, jobs):
    params = CullParams(subject="detail")
    alone, _, _ = score_photos(hunted_burst, AnalysisParams(), CullParams(subject="detail", burst_gap_s=0), jobs=1)
    # On its own, each photo is judged where it is sharp: A in the first, B in the second --
    # and then the second (B at 0 px) would be "best of the burst".
    assert _left(alone[0].subject.box_px) and not _left(alone[1].subject.box_px)
    assert [r.verdict for r in alone] == ["keep", "keep"]
    assert bursts.burst_order(alone)[0] == 1
    stats = {}
    shared, _, _ = score_photos(hunted_burst, AnalysisParams(), params, jobs=jobs, stats=stats)
    first, second = shared
    assert stats["rescored"] == 1 and stats["model_loads"] == stats["processes"] <= jobs
    assert first.subject.box_px == alone[0].subject.box_px and first.subject.shared_from == ""
    assert second.subject.box_px == first.subject.box_px and second.subject.shared_from == hunted_burst[0]
    assert second.subject.kind == "detail"
    assert second.blur_px > 3.0 > 1.0 > first.blur_px            # A at 4 px vs 0.7 px
    assert second.verdict != "keep" and "subject blur" in second.reason
    assert bursts.mark_bursts(shared, params.burst_gap_s) == 1
    assert first.best and not second.best and first.rating == 5


def test_raw_plus_jpeg_pair_is_one_shot():
    pair = [_r("/c/IMG_0001.JPG", (0, 0, 10, 10), t=0.0), _r("/c/IMG_0001.dng", (0, 0, 10, 10), t=0.0)]
    for r in pair:
        r.verdict, r.rating = "keep", 4
    assert bursts.mark_bursts(pair, 2.0) == 0                      # one shot: no burst, no "best"
    assert not any(r.best for r in pair) and [r.rating for r in pair] == [4, 4]
    three = pair + [_r("/c/IMG_0002.JPG", (0, 0, 10, 10), t=0.5), _r("/c/IMG_0002.DNG", (0, 0, 10, 10), t=0.5)]
    three[1].edge_sigma_px, three[1].sharpness = 0.6, 900.0       # the DNG of shot 1 is the sharpest file
    for r in three:
        r.verdict, r.rating = "keep", 4
    assert bursts.mark_bursts(three, 2.0) == 1
    assert [r.best for r in three] == [True, True, False, False]   # both files of the best shot
    assert [r.rating for r in three] == [5, 5, 4, 4]
    assert bursts.shot_key("/c/IMG_0001.JPG") == bursts.shot_key("/c/img_0001.dng") != bursts.shot_key("/d/IMG_0001.JPG")


def test_cli_json_and_report_name_the_shared_region(hunted_burst, tmp_path, capsys):
    import json
    from pifocus.cli import main
    out = tmp_path / "out"
    assert main(["cull", *hunted_burst, "--subject", "detail", "--json", "--out", str(out), "--jobs", "1"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    first, second = rows[0], rows[1]
    assert first["best"] and not second["best"] and rows[2]["summary"]["bursts"] == 1
    assert first["subject"]["shared_from"] is None and second["subject"]["shared_from"] == hunted_burst[0]
    assert second["subject"]["box_px"] == first["subject"]["box_px"]
    assert "the burst&#x27;s region, found on IMG_1.png" in (out / "cull.html").read_text()
