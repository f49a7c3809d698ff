"""Retake ``docs/dashboard.png``: ``nexus-trio demo`` with its traffic, seen in headless Chromium.

Usage (from the repository root, with Debian's ``chromium`` and ``chromium-driver``)::

    python scripts/dashboard_screenshot.py [--out docs/dashboard.png]

The demo runs on a free port, its spend ledger in a temporary directory of its own. The
picture is taken once the dashboard shows ``slow-flaky`` excluded, spend charged, and a full
request log (200 entries: about a minute of the demo's traffic).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.system.browser import Browser

ROW = "#backends tr[data-backend='slow-flaky']"


async def take(out: Path) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        demo = await trio.lowlevel.open_process(
            [sys.executable, "-m", "nexus_trio", "demo", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        browser = await trio.to_thread.run_sync(Browser.start, Path(workdir))
        try:
            assert demo.stdout is not None
            first = b""
            with trio.fail_after(15):
                while b"\n" not in first:
                    first += await demo.stdout.receive_some(4096)
            url = first.split(b"\n", 1)[0].decode().removeprefix("Dashboard: ")
            await browser.run(browser.driver.set_window_size, 1280, 1500)
            await browser.open(url)
            await browser.wait_text(ROW, "excluded", 120)
            await browser.wait_for(
                lambda driver: driver.find_element("id", "spend").is_displayed(), 10, "spend"
            )
            await browser.wait_text("#log-count", "200 of 200 shown", 120)
            await browser.wait_text(ROW, "excluded", 120)
            await browser.run(browser.driver.save_screenshot, str(out))
        finally:
            await browser.close()
            demo.send_signal(signal.SIGTERM)
            await demo.wait()
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    trio.run(take, parser.parse_args().out.resolve())


if __name__ == "__main__":
    main()
