"""Headless Chromium driving the explorer page: what its browser tests and `bench/bench_explore.py` share.

Debian's `chromium` and `chromium-driver` packages (/usr/bin/chromium, /usr/bin/chromedriver) driven by
Selenium; Selenium's own driver download is never used (it needs the internet). The page reports its progress
in `window.explorer` (updates drawn, whether a request is in flight, how long the last update took), so a
caller waits for the page, not for a fixed time.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


def missing() -> str | None:
    """Why a browser cannot be driven here (None when it can)."""
    import importlib.util
    for module, extra in (("selenium", "selenium"), ("starlette", '".[explore]"'), ("uvicorn", '".[explore]"'),
                          ("plotly", '".[explore]"')):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install {extra})"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists():
            return f"{path} is missing (apt-get install {package})"
    return None


class Browser:
    """One headless Chromium with a fresh profile (removed by `quit`)."""

    def __init__(self, width: int = 1400, height: int = 1000):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.profile = tempfile.mkdtemp(prefix="explore-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={width},{height}")
        options.add_argument(f"--user-data-dir={self.profile}")
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def updates(self) -> int:
        return int(self.js("return window.explorer ? window.explorer.updates : 0") or 0)

    def wait(self, condition, timeout: float = 20.0, what: str = "the page"):
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}")
            time.sleep(0.02)

    def settled(self, after: int, timeout: float = 20.0) -> None:
        """Wait until the page has drawn more than `after` updates and has none in flight."""
        self.wait(lambda: self.updates() > after and not self.js("return window.explorer.busy"), timeout,
                  f"update {after + 1}")

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.settled(0)

    def text(self, element_id: str) -> str:
        return self.js("return document.getElementById(arguments[0]).textContent", element_id)

    def slide(self, path: str, position: int) -> None:
        """Move a what-if slider to `position` (0..1000) as a dragging user would: an `input` event."""
        self.js("const s = document.getElementById('slider-' + arguments[0]); s.value = arguments[1];"
                "s.dispatchEvent(new Event('input'));", path, position)

    def select(self, element_id: str, value: str) -> None:
        self.js("const s = document.getElementById(arguments[0]); s.value = arguments[1];"
                "s.dispatchEvent(new Event('change'));", element_id, value)

    def click(self, element_id: str) -> None:
        self.js("document.getElementById(arguments[0]).click()", element_id)

    def tab(self, name: str) -> None:
        self.js("document.querySelector(`#tabs button[data-tab=${arguments[0]}]`).click()", name)

    def screenshot(self, path: str | Path) -> str:
        self.driver.save_screenshot(str(path))
        return str(path)

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
