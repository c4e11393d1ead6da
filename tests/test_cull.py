"""pifocus.cull: verdict rules, tolerances, bursts, EXIF time, subject finding, decoding and
scoring -- on literal values and small synthetic photos."""

import math
import struct

import numpy as np
import pytest

from pifocus.cull import CullParams, CullResult, Subject
from pifocus.cull import bursts, exif, inputs, subject
from pifocus.cull.scoring import judge
from pifocus.exc import ConfigError

cv2 = pytest.importorskip("cv2")


def _result(**kw):
    d = dict(path="x.jpg", width=800, height=600, time_s=0.0, time_source="exif",
             subject=Subject((200, 150, 400, 300), "centre"), blur_px=0.5, blur_source="blurest",
             edge_sigma_px=0.8, motion_blur=False, motion_px=0.0, motion_angle_deg=math.nan, p_in_focus=0.9,
             sharpness=500.0, focus_verdict="in_focus", noise_sigma_dn=2.0, snr_db=35.0, ev_offset=0.0,
             clip_high_pct=0.0, clip_low_pct=0.0)
    d.update(kw)
    return CullResult(**d)


# --- tolerances and verdict rules -------------------------------------------------------------

def test_default_limits_are_documented_values():
    p = CullParams()
    assert p.keep_blur_px == pytest.approx(2.25)   # coc 1.5 x (2 - 0.5)
    assert p.motion_keep_px == pytest.approx(4.5)
    assert p.noise_keep_dn == pytest.approx(8.0)
    assert p.ev_keep == pytest.approx(1.125)
    assert p.clip_keep_pct == pytest.approx(6.5)
    strict, lenient = CullParams(focus=1, noise=1, exposure=1), CullParams(focus=0, noise=0, exposure=0)
    assert strict.keep_blur_px < p.keep_blur_px < lenient.keep_blur_px
    assert strict.noise_keep_dn < lenient.noise_keep_dn and strict.ev_keep < lenient.ev_keep


@pytest.mark.parametrize("kw,verdict,word", [
    ({}, "keep", None),
    ({"blur_px": 3.0}, "maybe", "subject blur 3.0 px"),
    ({"blur_px": 5.0}, "reject", "subject blur 5.0 px"),
    ({"motion_blur": True, "motion_px": 12.0, "motion_angle_deg": 30.0}, "reject", "motion blur 12.0 px at 30 deg"),
    ({"motion_blur": True, "motion_px": 4.0, "motion_angle_deg": 0.0}, "maybe", "motion blur"),
    # flagged by a model's motion head alone: no streak length to grade, so at least "maybe"
    ({"motion_blur": True, "motion_px": math.nan}, "maybe", "motion blur (the model's motion head"),
    ({"noise_sigma_dn": 10.0}, "maybe", "noise sigma 10.0 DN"),
    ({"noise_sigma_dn": 20.0}, "reject", "noise"),
    ({"ev_offset": -3.0}, "reject", "underexposed -3.0 EV"),
    ({"ev_offset": 1.5}, "maybe", "overexposed +1.5 EV"),
    ({"clip_high_pct": 30.0}, "reject", "clipped white"),
    ({"clip_low_pct": 8.0}, "maybe", "crushed black"),
    ({"blur_px": math.nan, "p_in_focus": math.nan}, "maybe", "no detail"),
    ({"p_in_focus": 0.05}, "maybe", "CNN: subject soft"),
])
def test_judge_rules(kw, verdict, word):
    v, reasons = judge(_result(**kw), CullParams())
    assert v == verdict
    if word is None:
        assert reasons == []
    else:
        assert any(word in r for r in reasons), reasons


def test_strictness_moves_the_verdict():
    r = _result(blur_px=2.0)
    assert judge(r, CullParams(focus=0.0))[0] == "keep"
    assert judge(r, CullParams(focus=1.0))[0] == "maybe"
    assert judge(r, CullParams(focus=1.0, coc_px=0.5))[0] == "reject"


@pytest.mark.parametrize("kw,word", [({"focus": 1.5}, "cull.focus = 1.5 is invalid; allowed: 0..1"),
                                     ({"noise": -0.1}, "cull.noise"), ({"exposure": math.nan}, "cull.exposure"),
                                     ({"coc_px": 0.0}, "cull.coc_px = 0.0 is invalid; allowed: 0.25..20 px"),
                                     ({"burst_gap_s": -1}, "burst_gap_s"), ({"subject": "dog"}, "auto, face")])
def test_bad_tolerances_name_parameter_value_range_and_fix(kw, word):
    with pytest.raises(ConfigError, match=word.replace("(", r"\(").replace(".", r"\.")) as e:
        CullParams(**kw)
    assert "allowed" in str(e.value)


# --- bursts -----------------------------------------------------------------------------------

def test_group_times_literal():
    t = [10.0, 10.5, 11.2, 30.0, math.nan, 31.0, 9.8]
    assert bursts.group_times(t, 2.0) == [0, 0, 0, 1, 2, 1, 0]
    assert bursts.group_times(t, 0.0) == [1, 2, 3, 4, 6, 5, 0]
    with pytest.raises(ValueError, match="gap_s"):
        bursts.group_times(t, -1)


def test_ranks_share_ties_and_put_nan_last():
    assert bursts._ranks([3.0, 1.0, 3.0, math.nan, 0.5]) == [2.5, 1.0, 2.5, 4.0, 0.0]


def test_burst_order_sums_ranks_of_edge_width_and_sharpness():
    rs = [_result(edge_sigma_px=0.80, sharpness=400.0), _result(edge_sigma_px=0.75, sharpness=900.0),
          _result(edge_sigma_px=0.90, sharpness=600.0), _result(edge_sigma_px=0.85, sharpness=300.0)]
    assert bursts.burst_order(rs) == [1, 0, 2, 3]  # rank sums 3, 0, 4, 5
    # Two photos the measures disagree on (equal sums): the narrower edges win.
    assert bursts.burst_order([rs[0], rs[2]]) == [0, 1]
    rs[0].verdict = "reject"
    assert bursts.burst_order(rs)[-1] == 0


def test_burst_order_puts_measured_streaks_last_but_not_a_head_only_flag():
    """A measured motion streak goes to the end of the burst; the motion head's flag alone
    (no streak length: ``motion_px`` NaN, graded ``maybe``) does not cost the sharpest photo
    its place -- the head flags a few per cent of static, oriented textures (on the real
    clear_tube sweep it took the accepted frame 8 out of first place)."""
    sharp = dict(edge_sigma_px=0.75, sharpness=900.0)
    soft = dict(edge_sigma_px=0.85, sharpness=400.0)
    head_only = [_result(motion_blur=True, motion_px=math.nan, **sharp), _result(**soft)]
    assert bursts.burst_order(head_only) == [0, 1]
    streak = [_result(motion_blur=True, motion_px=6.0, motion_angle_deg=30.0, **sharp), _result(**soft)]
    assert bursts.burst_order(streak) == [1, 0]
    assert bursts.streaked(streak[0]) and not bursts.streaked(head_only[0]) and not bursts.streaked(_result())


def test_mark_bursts_best_is_sharpest_and_rated_5():
    rs = [_result(path="a", time_s=0.0, blur_px=0.0, edge_sigma_px=0.9),
          _result(path="b", time_s=0.4, blur_px=0.0, edge_sigma_px=0.8),       # sharpest
          _result(path="c", time_s=0.8, blur_px=0.0, edge_sigma_px=0.7, motion_blur=True, motion_px=9),
          _result(path="d", time_s=60.0, blur_px=4.0)]
    for r in rs:
        r.verdict, r.rating = "keep", 4
    assert bursts.mark_bursts(rs, 2.0) == 1
    assert [r.best for r in rs] == [False, True, False, False]
    assert [r.group_size for r in rs] == [3, 3, 3, 1]
    assert rs[1].rating == 5 and rs[0].rating == 4 and rs[3].rating == 4


# --- EXIF -------------------------------------------------------------------------------------

def _exif_tiff(dt=b"2024:06:01 12:30:45", sub=b"25", endian="<", offset=None):
    e = endian
    entries_exif = [(0x9003, 2, len(dt) + 1, dt + b"\x00"), (0x9291, 2, len(sub) + 1, sub + b"\x00")]
    if offset:
        entries_exif.append((0x9011, 2, len(offset) + 1, offset + b"\x00"))
    hdr = (b"II" if e == "<" else b"MM") + struct.pack(e + "HI", 42, 8)
    ifd0_size = 2 + 12 + 4
    exif_off = 8 + ifd0_size
    ifd0 = struct.pack(e + "H", 1) + struct.pack(e + "HHII", 0x8769, 4, 1, exif_off) + struct.pack(e + "I", 0)
    n = len(entries_exif)
    data_off = exif_off + 2 + 12 * n + 4
    body, blobs = struct.pack(e + "H", n), b""
    for tag, typ, count, val in entries_exif:
        if len(val) <= 4:
            body += struct.pack(e + "HHI", tag, typ, count) + val.ljust(4, b"\x00")
        else:
            body += struct.pack(e + "HHII", tag, typ, count, data_off + len(blobs))
            blobs += val
    return hdr + ifd0 + body + struct.pack(e + "I", 0) + blobs


def test_exif_datetime_original_with_subseconds_both_byte_orders():
    want = 1717245045.25  # 2024-06-01 12:30:45.25 (camera time read as UTC)
    assert exif.tiff_datetime(_exif_tiff()) == pytest.approx(want)
    assert exif.tiff_datetime(_exif_tiff(endian=">")) == pytest.approx(want)
    assert exif.tiff_datetime(_exif_tiff(offset=b"+02:00")) == pytest.approx(want - 7200)
    assert exif.tiff_datetime(_exif_tiff(dt=b"0000:00:00 00:00:00")) is None
    assert exif.tiff_datetime(b"II*\x00\xff\xff\xff\xff") is None


def test_exif_found_in_jpeg_and_png(tmp_path):
    tiff = _exif_tiff()
    ok, jpg = cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))
    jpg = jpg.tobytes()
    app1 = b"\xff\xe1" + struct.pack(">H", len(tiff) + 8) + b"Exif\x00\x00" + tiff
    p = tmp_path / "a.jpg"
    p.write_bytes(jpg[:2] + app1 + jpg[2:])
    assert exif.capture_time_s(str(p)) == pytest.approx(1717245045.25)
    ok, png = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    png = png.tobytes()
    import zlib
    chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    q = tmp_path / "a.png"
    q.write_bytes(png[:33] + chunk + png[33:])
    assert exif.capture_time_s(str(q)) == pytest.approx(1717245045.25)
    r = tmp_path / "plain.jpg"
    r.write_bytes(jpg)
    assert exif.capture_time_s(str(r)) is None
    assert exif.capture_time_s(str(tmp_path / "missing.jpg")) is None


def test_exif_agrees_with_pillow_written_file(tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    img = PIL.new("L", (16, 16))
    ex = PIL.Exif()
    ex.get_ifd(0x8769)[0x9003] = "2023:12:24 18:00:01"
    ex.get_ifd(0x8769)[0x9291] = "5"
    p = tmp_path / "pil.jpg"
    img.save(p, exif=ex)
    assert exif.capture_time_s(str(p)) == pytest.approx(1703440801.5)


# --- subject ----------------------------------------------------------------------------------

def test_pad_box_and_centre_box_literal():
    assert subject.pad_box((10, 10, 20, 20), 1000, 800) == (0, 0, 256, 256)
    assert subject.pad_box((900, 700, 100, 100), 1000, 800, min_px=50) == (900, 700, 100, 100)
    assert subject.pad_box((400, 300, 100, 100), 1000, 800, min_px=50, pad=0.5) == (350, 250, 200, 200)
    assert subject.pad_box((0, 0, 50, 50), 100, 80) == (0, 0, 100, 80)
    assert subject.centre_box(1000, 800) == (250, 200, 500, 400)


def test_detail_box_finds_the_textured_patch():
    rng = np.random.default_rng(0)
    img = np.full((600, 900), 128, np.uint8)
    img[350:550, 600:800] = rng.integers(0, 255, (200, 200), dtype=np.uint8)
    box = subject.detail_box(img)
    x, y, w, h = box
    assert x <= 700 <= x + w and y <= 450 <= y + h
    assert subject.detail_box(np.full((300, 300), 90, np.uint8)) is None
    f = subject.SubjectFinder("auto").find(img)
    assert f.kind in ("detail", "eyes", "face") and f.box_px[0] <= 700 <= f.box_px[0] + f.box_px[2]
    assert subject.SubjectFinder("centre").find(img).kind == "centre"
    assert subject.SubjectFinder("detail").find(np.full((300, 400), 90, np.uint8)).kind == "centre"


def test_yunet_model_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="face_model"):
        subject.SubjectFinder("auto", face_model=str(tmp_path / "nope.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ConfigError, match="YuNet"):
        subject.SubjectFinder("auto", face_model=str(bad))


# --- inputs -----------------------------------------------------------------------------------

def test_list_photos_recursive_natural_order_and_missing(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for n in ("img10.jpg", "img2.JPG", "notes.txt", ".hidden.jpg"):
        (tmp_path / "d" / n).write_bytes(b"x")
    (tmp_path / "d" / "sub" / "r.dng").write_bytes(b"x")
    photos, missing = inputs.list_photos([str(tmp_path / "d"), str(tmp_path / "d" / "img2.JPG"),
                                          str(tmp_path / "nope"), str(tmp_path / "d" / "notes.txt")])
    names = [p.split("/")[-1] for p in photos]
    assert names == ["img2.JPG", "img10.jpg", "r.dng"]
    assert [m[1].split(" (")[0] for m in missing] == ["no such file or folder", "not a photo file type"]


def test_decode_bad_files_give_reasons(tmp_path):
    (tmp_path / "e.jpg").write_bytes(b"")
    ok, jpg = cv2.imencode(".jpg", np.zeros((32, 32), np.uint8))
    (tmp_path / "t.jpg").write_bytes(jpg.tobytes()[:-10])
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert inputs.decode_photo(str(tmp_path / "e.jpg"))[1] == "empty file"
    assert "truncated" in inputs.decode_photo(str(tmp_path / "t.jpg"))[1]
    assert "decod" in inputs.decode_photo(str(tmp_path / "c.png"))[1]
    (tmp_path / "g.jpg").write_bytes(jpg.tobytes())
    d, why = inputs.decode_photo(str(tmp_path / "g.jpg"), want_thumb=True)
    assert why == "" and d.luma.shape == (32, 32) and d.thumb_bgr.shape[2] == 3


def test_raw_without_rawpy_says_how_to_install(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_rawpy(name, *a, **k):
        if name == "rawpy":
            raise ImportError("No module named 'rawpy'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_rawpy)
    (tmp_path / "a.dng").write_bytes(b"II*\x00")
    d, why = inputs.decode_photo(str(tmp_path / "a.dng"))
    assert d is None and "pip install 'pifocus[raw]'" in why


def test_corrupt_raw_with_rawpy_is_a_reason(tmp_path):
    pytest.importorskip("rawpy")
    (tmp_path / "a.dng").write_bytes(b"II*\x00" + b"\x00" * 64)
    d, why = inputs.decode_photo(str(tmp_path / "a.dng"))
    assert d is None and "raw" in why


@pytest.mark.parametrize("side,want", [(512, 320), (900, 320), (4000, 320), (200, 200)])
def test_jpeg_thumbnail_is_thumb_px_whatever_the_photo_size(tmp_path, side, want):
    ok, jpg = cv2.imencode(".jpg", np.full((side // 2, side, 3), 120, np.uint8))
    p = tmp_path / "t.jpg"
    p.write_bytes(jpg.tobytes())
    d, why = inputs.decode_photo(str(p), want_thumb=True)
    assert why == "" and max(d.thumb_bgr.shape[:2]) == want and d.thumb_bgr.shape[2] == 3


def test_report_motion_row_says_what_was_measured():
    """The contact sheet's motion row: a measured streak with its length and direction, the
    motion head's flag alone as such (no "yes n/a"), and "no"."""
    from pifocus.cull.report import render_html
    rows = [_result(path="streak.jpg", motion_blur=True, motion_px=6.0, motion_angle_deg=30.0),
            _result(path="head.jpg", motion_blur=True, motion_px=math.nan),
            _result(path="still.jpg")]
    page = render_html(rows, {}, {})
    cells = [c.split("</td>")[0] for c in page.split("<tr><td>motion</td><td>")[1:]]
    assert sorted(cells) == sorted(["yes, 6.0 px streak at 30&deg;",
                                    "yes (the model's motion head; no streak length measured)", "no"])
    assert "n/a" not in "".join(cells)
