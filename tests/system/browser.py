"""A headless Chromium driven by Selenium, for the dashboard's browser tests.

Every Selenium call blocks, so each runs in a worker thread (``trio.to_thread``): the simulated
backends of a test live in the test's own event loop and must keep answering meanwhile. Waits
are ``WebDriverWait`` on a condition with a deadline, never sleeps.

The browser comes from Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/run``
installs them). Without them the tests skip, saying so — except under CI (``CI`` set), where a
missing browser fails them: a browser test that skips in CI does not exist.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

T = TypeVar("T")

_TEXT_OF = (
    "return Array.from(document.querySelectorAll(arguments[0]), (e) => e.innerText).join('\\n')"
)

#: Every screenshot saved in this session (the system conftest lists them at the end).
SCREENSHOTS: list[Path] = []


def browser_paths() -> tuple[str, str]:
    """The Chromium binary and its driver; skips (fails under CI) when either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = (
        "headless Chromium and chromedriver are missing (apt-get install chromium chromium-driver)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run the browser tests")
    pytest.skip(message)


class Browser:
    """One Chromium window; every method runs the blocking Selenium call in a thread."""

    def __init__(self, driver: Any, screenshot_dir: Path) -> None:
        self.driver = driver
        self.screenshot_dir = screenshot_dir

    @classmethod
    def start(cls, screenshot_dir: Path) -> Browser:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chromium, chromedriver = browser_paths()
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,1000",
            "--no-first-run",
            "--disable-background-networking",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        return cls(driver, screenshot_dir)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(function, *args)

    async def open(self, url: str) -> None:
        await self.run(self.driver.get, url)

    async def wait_for(self, condition: Callable[[Any], Any], seconds: float, what: str) -> Any:
        """Block (in a thread) until ``condition(driver)`` is truthy; fails after ``seconds``."""
        from selenium.webdriver.support.ui import WebDriverWait

        wait = WebDriverWait(self.driver, seconds, poll_frequency=0.05)
        return await self.run(wait.until, condition, f"timed out after {seconds} s: {what}")

    async def wait_text(self, css: str, text: str, seconds: float) -> None:
        """Wait until an element at ``css`` shows ``text`` (case-sensitive substring).

        The page re-renders every second, so the text is read in one script call (element
        handles would go stale between finding and reading them).
        """

        def shows(driver: Any) -> bool:
            return text in driver.execute_script(_TEXT_OF, css)

        await self.wait_for(shows, seconds, f"{css!r} to show {text!r}")

    async def text(self, css: str) -> str:
        """The rendered text of the elements at ``css``, one per line."""
        value: str = await self.run(self.driver.execute_script, _TEXT_OF, css)
        return value

    async def script(self, source: str) -> Any:
        return await self.run(self.driver.execute_script, source)

    async def console_errors(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = await self.run(self.driver.get_log, "browser")
        return [entry for entry in entries if entry["level"] == "SEVERE"]

    async def screenshot(self, name: str) -> Path:
        path = self.screenshot_dir / f"dashboard-{name}.png"
        await self.run(self.driver.save_screenshot, str(path))
        SCREENSHOTS.append(path)
        return path

    async def close(self) -> None:
        await self.run(self.driver.quit)
