"""The phone page in headless Chromium (Debian packages ``chromium`` + ``chromium-driver``,
driven with selenium).  Skips cleanly when any of them is missing.

Checks: the page loads, the MJPEG preview updates, the meter moves, the nudge and autofocus
buttons work against the ``sim`` drive, tapping sets the ROI; saves screenshots to
``tests/artifacts/`` (git-ignored).
"""

import hashlib
import time
from pathlib import Path

import pytest

from pifocus import config as cfgmod
from pifocus.service import SdNotifier, Service

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

import headless_chromium  # noqa: E402  (skips this module without chromium/selenium)

headless_chromium.require()

from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = pytest.mark.slow

TOML = """\
[source]
name = "sim"
width = 640
height = 480
realtime = true
fps = 30

[analysis]
use_cnn = false

[drive]
name = "sim"
state_file = "none"

[web]
port = 0
max_fps = 0
captures_dir = "{captures}"
"""


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser")
    p = d / "pifocus.toml"
    p.write_text(TOML.format(captures=d / "captures"))
    s = Service(cfgmod.load(p), notifier=SdNotifier(""), outputs_enabled=False)
    s.start()
    assert s.wait_ready(20)
    yield s
    s.shutdown()


@pytest.fixture(scope="module")
def browser():
    drv, profile = headless_chromium.start(412, 915)
    yield drv
    headless_chromium.stop(drv, profile)


def js(drv, script, *args):
    return drv.execute_script(script, *args)


def wait(drv, script, timeout=10.0, *args):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = js(drv, script, *args)
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {script}")


def preview_hash(drv) -> str:
    data = js(drv, """
        const img = document.getElementById('preview');
        if (!img.naturalWidth) return null;
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        c.getContext('2d').drawImage(img, 0, 0);
        return c.toDataURL('image/png');""")
    return hashlib.sha1(data.encode()).hexdigest() if data else None


def click(drv, css):
    drv.find_element(By.CSS_SELECTOR, css).click()


def test_page_preview_meter_nudge_autofocus(svc, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    drv = browser
    drv.get(svc.web.url)
    assert drv.title == "pifocus"
    # status polling runs and the preview stream shows frames
    wait(drv, "return window.pifocus && window.pifocus.statusCount >= 2")
    wait(drv, "return document.getElementById('preview').naturalWidth > 0")
    assert js(drv, "return document.getElementById('preview').naturalWidth") == 640
    hashes = set()
    deadline = time.monotonic() + 10
    while len(hashes) < 3 and time.monotonic() < deadline:
        h = preview_hash(drv)
        if h:
            hashes.add(h)
        time.sleep(0.15)
    assert len(hashes) >= 3, "the preview did not update"
    assert svc.hub.clients >= 1

    # The meter moves as the lens is nudged through focus with the buttons.
    svc.drive.move_to(300)
    svc.pipeline.analyzer.reset()
    time.sleep(0.5)
    meters = []
    for _ in range(4):
        click(drv, "[data-nudge='100']")
        time.sleep(0.6)
        meters.append(js(drv, "return window.pifocus.meter"))
    assert max(meters) - min(meters) > 0.2, meters
    width = js(drv, "return document.getElementById('meter-fill').style.width")
    assert width.endswith("%")
    pos = js(drv, "return document.getElementById('pos').textContent")
    assert pos.startswith("pos ") and pos != "pos –"

    # Autofocus from far out of focus.
    svc.drive.move_to(150)
    time.sleep(0.3)
    wait(drv, "return !document.getElementById('af').disabled")
    click(drv, "#af")
    wait(drv, "const s = window.pifocus.status; return s && s.autofocus && "
              "['done', 'failed'].includes(s.autofocus.state)", timeout=60)
    af = js(drv, "return window.pifocus.status.autofocus")
    assert af["state"] == "done", af
    assert abs(af["result"]["final_position"] - 500) <= 20, af  # the sim lens is sharp at 500
    text = wait(drv, "const t = document.getElementById('af-state').textContent; return t.includes('done') && t")
    assert "→" in text
    wait(drv, "return window.pifocus.status.in_focus", timeout=10)

    # Heat map on, then a screenshot as the test artifact.
    click(drv, "#heatmap")
    time.sleep(0.8)
    shot = ARTIFACTS / "web-page.png"
    drv.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_tap_sets_roi_and_capture_button(svc, browser):
    drv = browser
    if not drv.current_url.startswith(svc.web.url):
        drv.get(svc.web.url)
        wait(drv, "return window.pifocus && window.pifocus.statusCount >= 1")
    wait(drv, "return document.getElementById('preview').naturalWidth > 0")
    # A tap at (25 %, 25 %) of the preview: a 30 % region centred there.
    js(drv, """
        const c = document.getElementById('overlay'), r = c.getBoundingClientRect();
        const at = {clientX: r.left + r.width * 0.25, clientY: r.top + r.height * 0.25, pointerId: 1,
                    bubbles: true};
        c.dispatchEvent(new PointerEvent('pointerdown', at));
        c.dispatchEvent(new PointerEvent('pointerup', at));""")
    wait(drv, "const a = window.pifocus.lastAction; return a && a.path === '/api/roi' && a.status === 200")
    roi = svc.pipeline.analyzer.params.effective_roi
    assert roi == pytest.approx((0.1, 0.1, 0.3, 0.3), abs=0.01)
    click(drv, "#roi-reset")
    wait(drv, "const s = window.pifocus.status; return s && s.roi && s.roi[0] === 0.2")

    click(drv, "#capture")
    wait(drv, "const a = window.pifocus.lastAction; return a && a.path === '/api/capture' && a.status === 201")
    link = drv.find_element(By.CSS_SELECTOR, "#msg a")
    assert link.text.endswith(".png")
    assert "(grey)" in drv.find_element(By.ID, "msg").text   # the sim chart is grey
    # The format menu: JPEG, then DNG, which the sim cannot give (the page says why).
    from selenium.webdriver.support.ui import Select
    Select(drv.find_element(By.ID, "capture-format")).select_by_value("jpg")
    click(drv, "#capture")
    wait(drv, "const a = window.pifocus.lastAction; return a && a.path === '/api/capture' && a.status === 201 "
              "&& a.data.file.endsWith('.jpg')")
    Select(drv.find_element(By.ID, "capture-format")).select_by_value("dng")
    click(drv, "#capture")
    wait(drv, "const a = window.pifocus.lastAction; return a && a.path === '/api/capture' && a.status === 409")
    wait(drv, "return document.getElementById('msg').textContent.includes('no raw frames to save as DNG')")
    Select(drv.find_element(By.ID, "capture-format")).select_by_value("")

    # Peaking off and on through the page.
    click(drv, "#peaking")
    wait(drv, "return document.getElementById('peaking').getAttribute('aria-pressed') === 'false'")
    assert svc.hub.peaking is False
    click(drv, "#peaking")
    wait(drv, "return document.getElementById('peaking').getAttribute('aria-pressed') === 'true'")
    drv.save_screenshot(str(ARTIFACTS / "web-page-roi.png"))
