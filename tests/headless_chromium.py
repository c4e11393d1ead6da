"""Headless Chromium for the page tests: Debian's ``chromium`` + ``chromium-driver`` driven
with selenium, found, skipped and started in one place.

:func:`require` skips the calling test module (called at its import) when any piece is
missing; :func:`start` returns ``(driver, profile_dir)``, or skips the test when the browser
cannot start (a broken browser install is not a pifocus failure); :func:`stop` ends it.
"""

import shutil
import tempfile

import pytest

CHROME = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
#: Flags every page test runs Chromium with (no network side channels, no sandbox in CI).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def require() -> None:
    """Skip the importing test module unless selenium, chromium and chromedriver are here."""
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if not CHROME or not DRIVER:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
                    allow_module_level=True)


def start(width: int, height: int, extra=(), browser_logs: bool = False):
    """A headless Chromium with a ``width`` x ``height`` window and its own throw-away
    profile; ``extra`` flags after :data:`FLAGS`; ``browser_logs`` keeps the console log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service as ChromeService

    opts = Options()
    for f in FLAGS + (f"--window-size={width},{height}",) + tuple(extra):
        opts.add_argument(f)
    profile = tempfile.mkdtemp(prefix="pifocus-chromium-")
    opts.add_argument(f"--user-data-dir={profile}")
    opts.binary_location = CHROME
    if browser_logs:
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        drv = webdriver.Chrome(options=opts, service=ChromeService(DRIVER))
    except Exception as e:  # a broken browser install is not a pifocus failure
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"cannot start headless chromium: {e}")
    drv.set_page_load_timeout(30)
    return drv, profile


def stop(drv, profile: str) -> None:
    """Quit the browser and remove its profile."""
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)
