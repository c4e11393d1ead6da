"""Every resolution judged (issue 9 part 2): each shared focus sweep's subject region, at the
sensor's sampling and enlarged 2x and 3x bicubically (an oversampled sensor behind the same
lens), gives the same sharpest frame and an in-focus window within +-1 frame, with the
default ``analysis_scale = "auto"``.  ``python tools/verdict_bench.py --invariance`` prints
the same check.  Needs ``../shared/data`` (skips without it); the region is cut out
before enlarging, so the whole file takes about a minute.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRUTH = json.loads((ROOT / "tests" / "data" / "sweep_truth.json").read_text())
SWEEPS = sorted(TRUTH["sweeps"])
#: Sweeps whose window at 2x or 3x still moves by more than a frame, with why (measured, not
#: hidden): the shipped model's in-focus calls (v1's net) on wicker are far wider than the
#: judged range natively (8..24 of an accepted 22..24, with a second plane at 5..9), while the
#: enlarged copies light 23..24 only, so the window's first edge sits on frames the model is
#: unsure about.  (ant and pcb-depthmap-10 left this list when the settle test was scaled to
#: the step between candidates: judged at 3-4 and 4 at 2x, they give the native windows.)
KNOWN_2X = {"wicker_balls_phone"}
#: Sweeps whose 2x copy is judged at a finer level than the native frames: none.  (The clear
#: tube's 2x copy was judged at 2 -- its smooth end edges read a ratio of 4.04 there, under the
#: reduced levels' bar -- though only 11 of its tiles are textured at 2 against 39 at 4, while
#: natively level 1 has none and the frames are judged at 3; a level now needs half the
#: textured tiles of its octave (``scale.MIN_TEXTURED_SHARE``), and the copy is judged at 6,
#: with the native window and live pull.)
KNOWN_FINER: set = set()


#: Sweeps whose live pull, enlarged, does not light (the pull's target: lit at least once, never
#: more than a frame outside the accepted range), with why: mineral's in-focus share sits at
#: the bar on its best frames at every sampling (0.45-0.53: the model is unsure of its
#: crystals), and natively a single frame lights.
#: (ant's 2x copy lit two frames early -- its enlarged grain passed the texture gate and read
#: sharp on the first approach -- until a first-approach frame whose own detail lives coarser
#: than full resolution is no longer in focus there: tests/test_meter_first_pass.py.)
KNOWN_PULL = {"mineral_crystals_micro"}


def _check_pull_and_scale(name, up):
    """The enlarged copy's live pull lights within the accepted range (+-1), and its stills
    are all judged at one analysis scale (the ROI's, held through the rack: the 3x beetle's
    memory started over mid-rack on the brightness drift and judged some stills at 1)."""
    assert len(up["analysis_scale"]) == 1, up
    if name in KNOWN_PULL and not up["pull_ok"]:
        pytest.xfail(f"{name}: pull lit {up['pull_lit']}")
    assert up["pull_ok"], up


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "tools"))
    import verdict_bench
    return verdict_bench


_JUDGED: dict = {}


@pytest.fixture
def judged(shared_data, bench):
    """``judged(name)``: the invariance check of one sweep at 2x and 3x, computed once per
    session (the tests below share it)."""
    def get(name):
        if name not in _JUDGED:
            _JUDGED[name] = bench.invariance(name, TRUTH, shared_data, upsamplings=(2, 3))
        return _JUDGED[name]
    return get


@pytest.mark.parametrize("up", [2, 3])
@pytest.mark.parametrize("name", SWEEPS)
def test_the_enlarged_live_pull_lights_in_the_accepted_range(judged, name, up):
    _check_pull_and_scale(name, judged(name)[f"x{up}"])


#: At 3x, besides the above: none.  (Beetle's sharpest frame at 3x was 27 -- the far plane's
#: bristle band on the 12x level, 17 px of its ROI, won the wide-range sharpness -- until that
#: sharpness kept only the levels the ROI fills, and a level whose next candidate has no
#: detail of its own stopped qualifying: see pifocus.focus.scale.)
KNOWN_3X_SHARPEST: set = set()
#: 3x windows that move, with why: beetle's region (re-aimed on the mandible tip in the truth)
#: enlarged 3x reads octave ratios 3.02 at level 2 and 0.92 at level 3 on its sharpest frame --
#: the tip's fine pits read below 1 (0.61 at the native full resolution), which the settle
#: test takes for noise -- so the 3x crop is judged at 2, still 1.5x oversampled, and its
#: stills light 10..15 against the native 9..17 plus the other plane's 25..27.  The whole 3x
#: frames are judged at 3 with the native window's edges (``verdict_bench.py --upsample 3``:
#: 9..16 and 26..27), and the 3x live pull lights the judged frame (12).
KNOWN_3X_WINDOW = {"beetle_mandibles_macro"}


@pytest.mark.parametrize("name", SWEEPS)
def test_three_times_the_sampling_is_judged_the_same(judged, name):
    """3x: level 2 is still 1.5x oversampled; "auto" must pass over it (``SETTLE_RATIO``)."""
    r = judged(name)
    native, up = r["x1"], r["x3"]
    if name in KNOWN_3X_SHARPEST and not up["same_sharpest"]:
        pytest.xfail(f"{name}: sharpest {up['sharpest']} at 3x, {native['sharpest']} native")
    assert up["same_sharpest"], r
    if name in KNOWN_2X and not up["same_window"]:
        pytest.xfail(f"binary model's window edges on {name}: {native['window']} vs {up['window']}")
    if name in KNOWN_3X_WINDOW and not up["same_window"]:
        pytest.xfail(f"{name}: 3x crop judged at {up['analysis_scale']}: {native['window']} vs {up['window']}")
    assert up["same_window"], r


@pytest.mark.parametrize("name", SWEEPS)
def test_twice_the_sampling_is_judged_the_same(judged, name):
    r = judged(name)
    native, up = r["x1"], r["x2"]
    assert up["same_sharpest"], r
    if name in KNOWN_2X and not up["same_window"]:
        pytest.xfail(f"binary model's window edges on {name}: {native['window']} vs {up['window']}")
    assert up["same_window"], r
    finer = min(up["analysis_scale"]) < max(native["analysis_scale"])
    if name in KNOWN_FINER and finer:
        pytest.xfail(f"{name}: 2x judged at {up['analysis_scale']}, native at {native['analysis_scale']}")
    assert not finer, r    # never judged finer than the native frames
