"""Headless Chromium driven by selenium: a fresh profile per browser, optional fake microphone."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support.tools import tool

T = TypeVar("T")

CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1100,900", "--autoplay-policy=no-user-gesture-required",
)


@contextmanager
def chromium(fake_microphone: Path | None = None, extra_flags: tuple[str, ...] = ()) -> Iterator[webdriver.Chrome]:
    """Start headless Chromium; with ``fake_microphone`` (a WAV) getUserMedia plays that file once."""
    profile = tempfile.mkdtemp(prefix="duplex-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = tool("chromium", "chromium-browser", "google-chrome")
    for flag in (*CHROMIUM_FLAGS, *extra_flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if fake_microphone is not None:
        options.add_argument("--use-fake-ui-for-media-stream")
        options.add_argument("--use-fake-device-for-media-stream")
        options.add_argument(f"--use-file-for-fake-audio-capture={fake_microphone}%noloop")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(tool("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(check: Callable[[], T], timeout: float = 20.0, what: str = "condition",
             driver: webdriver.Chrome | None = None) -> T:
    """Poll ``check`` until it returns something truthy; on timeout say what and show the console."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            console = ""
            if driver is not None:
                console = "\n".join(entry["message"] for entry in driver.get_log("browser"))
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\nbrowser console:\n{console}")
        time.sleep(0.1)
