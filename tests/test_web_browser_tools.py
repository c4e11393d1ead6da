"""The page for a phone on a rig, in headless Chromium (skips cleanly without chromium,
chromedriver or selenium): portrait 390x844, landscape 844x390 and desktop 1280x800 layouts,
and a click through the new controls (+-1 nudges, cancel AF, magnifier and its scales,
zebra, peaking colour, histogram, AF curve, messages that clear).  Screenshots go to
``tests/artifacts/`` (git-ignored)."""

import time
from pathlib import Path

import pytest

from pifocus import config as cfgmod
from pifocus.service import SdNotifier, Service

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
import headless_chromium  # noqa: E402  (skips this module without chromium/selenium)

headless_chromium.require()

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

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
settle_s = 0.15

[web]
port = 0
max_fps = 0
captures_dir = "{captures}"
presets_file = "{presets}"
"""


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser-tools")
    p = d / "pifocus.toml"
    p.write_text(TOML.format(captures=d / "captures", presets=d / "presets.json"))
    s = Service(cfgmod.load(p), notifier=SdNotifier(""), outputs_enabled=False)
    s.start()
    assert s.wait_ready(20)
    yield s
    s.shutdown()


def _browser(w, h):
    return headless_chromium.start(w, h, extra=("--hide-scrollbars",), browser_logs=True)


@pytest.fixture(scope="module")
def browser():
    drv, profile = _browser(390, 844)
    yield drv
    headless_chromium.stop(drv, profile)


def js(drv, script, *args):
    return drv.execute_script(script, *args)


def wait(drv, script, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = js(drv, script)
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {script}")


def click(drv, css):
    drv.find_element(By.CSS_SELECTOR, css).click()


def rect(drv, el_id):
    return js(drv, f"const r = document.getElementById('{el_id}').getBoundingClientRect(); "
                   "return {l: r.left, t: r.top, r: r.right, b: r.bottom, w: r.width, h: r.height};")


def open_page(drv, svc, w, h):
    """Load the page in a ``w`` x ``h`` CSS-pixel viewport (device emulation: a headless
    window's size includes no browser UI, but emulation makes it exact), phones at 3x."""
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": w, "height": h, "deviceScaleFactor": 3 if min(w, h) < 500 else 1, "mobile": min(w, h) < 500,
        "screenOrientation": {"type": "landscapePrimary" if w > h else "portraitPrimary", "angle": 90 if w > h else 0}})
    drv.get(svc.web.url)
    wait(drv, "return window.pifocus && window.pifocus.statusCount >= 2")
    wait(drv, "return document.getElementById('preview').naturalWidth > 0")
    time.sleep(0.3)
    vw, vh = js(drv, "return [window.innerWidth, window.innerHeight]")
    assert (vw, vh) == (w, h)
    return vw, vh


def no_script_errors(drv):
    """The page's JavaScript raised nothing (the browser console has no SEVERE entry)."""
    try:
        logs = drv.get_log("browser")
    except Exception:  # a driver without log support: nothing to check
        return
    bad = [e["message"] for e in logs if e.get("level") == "SEVERE" and "favicon" not in e["message"]
           and "/api/" not in e["message"]]   # refused API calls (tested 4xx) are logged as SEVERE too
    assert not bad, bad


def in_view(r, vw, vh):
    return r["t"] >= -1 and r["b"] <= vh + 1 and r["l"] >= -1 and r["r"] <= vw + 1 and r["h"] > 0


def test_phone_portrait_controls(svc, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    drv = browser
    vw, vh = open_page(drv, svc, 390, 844)
    # +-1 nudges move the drive by one step
    svc.drive.move_to(480)
    time.sleep(0.3)
    click(drv, "[data-nudge='1']")
    wait(drv, "const a = window.pifocus.lastAction; return a && a.path === '/api/nudge' && a.status === 200")
    assert svc.drive.position == pytest.approx(481)
    click(drv, "[data-nudge='-1']")
    wait(drv, "const a = window.pifocus.lastAction; return a && a.data.position === 480")
    # messages clear by themselves
    wait(drv, "return document.getElementById('msg').textContent.includes('position')", timeout=3)
    wait(drv, "return document.getElementById('msg').textContent === ''", timeout=8)

    # errors are phrased for the page, not the command line
    t = js(drv, "return window.pifocus.pagePhrase('too little texture: no part of the ROI has detail above the noise "
                "at any position; aim at a detailed subject or move the ROI (--roi)')")
    assert "--" not in t and "drag a new focus region" in t
    t = js(drv, "return window.pifocus.pagePhrase('peak at the far edge of the range (990): focus may lie beyond the "
                "limits; widen drive.min_position/max_position or move the camera')")
    assert "drive.min_position" not in t and "config" in t

    # exposure: histogram drawn, readout line with ISO
    wait(drv, "return document.getElementById('expo').textContent.includes('ISO 100')")
    painted = js(drv, "const c = document.getElementById('hist'), d = c.getContext('2d')"
                      ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
                      "for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n;")
    assert painted > 200

    # zebra and peaking colour reach the preview encoder
    click(drv, "#zebra")
    wait(drv, "return document.getElementById('zebra').getAttribute('aria-pressed') === 'true'")
    assert svc.hub.zebra is True
    click(drv, "#zebra")
    wait(drv, "return document.getElementById('zebra').getAttribute('aria-pressed') === 'false'")
    Select(drv.find_element(By.ID, "peak-colour")).select_by_value("yellow")
    wait(drv, "const a = window.pifocus.lastAction; return a && a.data.peaking_colour === 'yellow'")
    assert svc.hub.peaking_colour == "yellow"

    # the magnifier: on, 4x, a full-resolution crop arrives; hold leaves it
    click(drv, "#zoom-toggle")
    wait(drv, "return window.pifocus.zoom.loads >= 2")
    assert js(drv, "return document.getElementById('zoombox').hidden") is False
    click(drv, "[data-scale='4']")
    wait(drv, "return document.getElementById('zoom').src.includes('scale=4')")
    n = js(drv, "return window.pifocus.zoom.loads")
    wait(drv, f"return window.pifocus.zoom.loads >= {n + 2}")
    drv.save_screenshot(str(ARTIFACTS / "web-phone-zoom.png"))
    click(drv, "#zoom-toggle")
    assert js(drv, "return document.getElementById('zoombox').hidden") is True

    # tap-and-hold on the preview magnifies there; a tap in the magnifier pans; a hold leaves it
    js(drv, """
        const c = document.getElementById('overlay'), r = c.getBoundingClientRect();
        c.dispatchEvent(new PointerEvent('pointerdown', {clientX: r.left + r.width * 0.7, clientY: r.top + r.height * 0.4,
                                                         pointerId: 2, bubbles: true}));""")
    wait(drv, "return window.pifocus.zoom.on === true", timeout=3)
    assert js(drv, "return window.pifocus.zoom.x") == pytest.approx(0.7, abs=0.02)
    x0 = js(drv, "return window.pifocus.zoom.x")
    js(drv, """
        const z = document.getElementById('zoombox'), r = z.getBoundingClientRect();
        const at = {clientX: r.left + r.width * 0.9, clientY: r.top + r.height * 0.5, pointerId: 3, bubbles: true};
        z.dispatchEvent(new PointerEvent('pointerdown', at));
        z.dispatchEvent(new PointerEvent('pointerup', at));""")
    assert js(drv, "return window.pifocus.zoom.x") > x0            # panned towards the tap
    js(drv, """
        const z = document.getElementById('zoombox'), r = z.getBoundingClientRect();
        z.dispatchEvent(new PointerEvent('pointerdown', {clientX: r.left + 5, clientY: r.top + 5, pointerId: 4,
                                                         bubbles: true}));""")
    wait(drv, "return window.pifocus.zoom.on === false", timeout=3)
    assert js(drv, "return document.getElementById('zoombox').hidden") is True

    # autofocus, then cancel it while it runs; the AF curve of a finished run is drawn
    svc.drive.move_to(150)
    time.sleep(0.3)
    Select(drv.find_element(By.ID, "af-strategy")).select_by_value("sweep")  # the slow one: time to cancel
    click(drv, "#af")
    wait(drv, "return !document.getElementById('af-cancel').disabled", timeout=5)
    click(drv, "#af-cancel")
    wait(drv, "const s = window.pifocus.status; return s && s.autofocus.state === 'cancelled'", timeout=10)
    wait(drv, "return document.getElementById('msg').textContent.includes('cancelled')", timeout=5)
    Select(drv.find_element(By.ID, "af-strategy")).select_by_value("")
    click(drv, "#af")
    wait(drv, "const s = window.pifocus.status; return s && ['done', 'failed'].includes(s.autofocus.state)", timeout=60)
    wait(drv, "return document.getElementById('afcurve-text').textContent.startsWith('last AF')")
    assert "running" not in js(drv, "return document.getElementById('msg').textContent")

    # rack focus: save the position as preset A (the page asks for the name), move away, go back
    svc.drive.move_to(450)
    time.sleep(0.3)
    js(drv, "window.prompt = () => 'A'")
    click(drv, "#preset-save")
    wait(drv, "const a = window.pifocus.lastAction; return a && a.path === '/api/presets' && a.status === 201")
    wait(drv, "return document.querySelector(\"[data-preset='A']\") !== null")
    svc.drive.move_to(250)
    time.sleep(0.3)
    Select(drv.find_element(By.ID, "rack-speed")).select_by_value("800")
    click(drv, "[data-preset='A']")
    wait(drv, "const s = window.pifocus.status; return s && s.rack && s.rack.state === 'done'", timeout=10)
    assert svc.drive.position == 450
    wait(drv, "return document.getElementById('msg').textContent.startsWith('at A')", timeout=5)

    # focus bracket between presets A (450) and B (550) from the page
    assert js(drv, "return document.getElementById('stack').disabled") is True   # no B yet
    svc.drive.move_to(550)
    time.sleep(0.3)
    js(drv, "window.prompt = () => 'B'")
    click(drv, "#preset-save")
    wait(drv, "return !document.getElementById('stack').disabled")
    click(drv, "#stack-fuse")                       # fuse off, then on again
    assert js(drv, "return document.getElementById('stack-fuse').getAttribute('aria-pressed')") == "false"
    click(drv, "#stack-fuse")
    click(drv, "#stack")
    wait(drv, "return document.getElementById('stack-state').textContent.includes('running')", timeout=5)
    wait(drv, "const s = window.pifocus.status; return s && s.stack && s.stack.state === 'done'", timeout=60)
    wait(drv, "return document.getElementById('msg').textContent.startsWith('bracket saved')", timeout=5)
    assert svc.controls.stack_state["frames"] >= 2

    # continuous AF on and off from the page
    click(drv, "#af-follow")
    wait(drv, "return document.getElementById('af-follow').getAttribute('aria-pressed') === 'true'")
    assert svc.controls.follow.enabled is True
    wait(drv, "return document.getElementById('af-state').textContent.includes('following')")
    click(drv, "#af-follow")
    wait(drv, "return document.getElementById('af-follow').getAttribute('aria-pressed') === 'false'")
    assert svc.controls.follow.enabled is False

    # heat map on; the verdict and the meter stay in view when the page is scrolled down
    click(drv, "#heatmap")
    js(drv, "window.scrollTo(0, document.body.scrollHeight)")
    time.sleep(0.4)
    for el in ("verdict", "meter"):
        assert in_view(rect(drv, el), vw, vh), el
    drv.save_screenshot(str(ARTIFACTS / "web-phone-scrolled.png"))
    js(drv, "window.scrollTo(0, 0)")
    time.sleep(0.3)
    drv.save_screenshot(str(ARTIFACTS / "web-phone.png"))
    no_script_errors(drv)


@pytest.mark.parametrize("w, h, name", [(844, 390, "landscape"), (1280, 800, "desktop")])
def test_landscape_side_by_side_nothing_below_the_fold(svc, browser, w, h, name):
    drv = browser
    vw, vh = open_page(drv, svc, w, h)
    assert js(drv, "return document.documentElement.scrollHeight") <= vh + 1, "the page itself scrolls"
    view, hud = rect(drv, "view"), rect(drv, "hud")
    assert view["r"] <= hud["l"] + 1, (view, hud)          # side by side
    for el in ("verdict", "meter", "af", "view"):
        assert in_view(rect(drv, el), vw, vh), el
    for sel in ("[data-nudge='-100']", "[data-nudge='100']", "#af-cancel", "#zoom-toggle"):
        r = js(drv, f"const r = document.querySelector(\"{sel}\").getBoundingClientRect(); "
                    "return {l: r.left, t: r.top, r: r.right, b: r.bottom, w: r.width, h: r.height};")
        assert r["w"] >= 30 and r["h"] >= 24, (sel, r)     # still a button you can hit
    drv.save_screenshot(str(ARTIFACTS / f"web-{name}.png"))
    no_script_errors(drv)
