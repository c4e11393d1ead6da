"""``pifocus cull`` on real photos: the MFIFB multi-focus pairs in ../shared/data (skips when
absent).  For each pair whose centre box has a clear reference (the pair's own tile
Laplacian energies, as ``tools/cull_bench.py mfifb`` computes it), the photo sharp on the
centre subject must rank above its twin.  The full set is measured by
``python tools/cull_bench.py mfifb``; this test takes a fixed subset to stay quick."""

import importlib.util
from pathlib import Path

import pytest

from pifocus.cull import CullParams
from pifocus.cull.bursts import burst_order
from pifocus.cull.inputs import decode_photo

ROOT = Path(__file__).resolve().parents[1]
#: Scenes of the subset (every third scene in name order).
STRIDE = 3


def _bench():
    spec = importlib.util.spec_from_file_location("_tool_cull_bench", ROOT / "tools" / "cull_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mfifb_sharp_on_centre_ranks_first(shared_data):
    root = shared_data / "multifocus-pairs" / "mfifb"
    if not root.is_dir():
        pytest.skip("no MFIFB pairs in ../shared/data")
    bench = _bench()
    score = bench.make_scorer(CullParams(subject="centre"))
    agree = n = 0
    for scene in sorted(p for p in root.iterdir() if p.is_dir())[::STRIDE]:
        files = sorted(f for f in scene.iterdir() if f.stem.endswith(("_A", "_B")))
        if len(files) != 2:
            continue
        (da, _), (db, _) = decode_photo(str(files[0])), decode_photo(str(files[1]))
        if da is None or db is None or da.luma.shape != db.luma.shape:
            continue
        ra, rb = score(da.luma, str(files[0])), score(db.luma, str(files[1]))
        ref = bench.centre_reference(da.luma, db.luma, ra.subject.box_px)
        if ref == 0:
            continue
        n += 1
        agree += (burst_order([ra, rb])[0] == 0) == (ref == 1)
    assert n >= 8, f"only {n} pairs with a clear reference"
    assert agree / n >= 0.85, f"agreement {agree}/{n}"
