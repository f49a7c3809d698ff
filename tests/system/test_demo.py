"""``nexus-trio demo``: the dashboard address first, traffic that makes quality act, and
nothing left behind (docs/cli.md#demo)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import msgspec
import pytest
import trio

from tests.system.polling import poll

pytestmark = pytest.mark.system


def _demo_dirs(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty working directory for the demo, and an environment whose temporary directory
    is another empty one (``TMPDIR``), so what the demo leaves behind in either shows."""
    (tmp_path / "cwd").mkdir()
    (tmp_path / "tmp").mkdir()
    return tmp_path / "cwd", {**os.environ, "TMPDIR": str(tmp_path / "tmp")}


async def _banner(process: trio.Process) -> bytes:
    """The demo's banner, read from its stdout to the last line."""
    assert process.stdout is not None
    output = b""
    with trio.fail_after(15):
        while b"Ctrl-C drains and stops." not in output:
            output += await process.stdout.receive_some(4096)
    return output


async def test_demo_prints_the_dashboard_and_its_traffic_gets_the_flaky_backend_probed(
    tmp_path: Path,
) -> None:
    cwd, env = _demo_dirs(tmp_path)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "nexus_trio", "demo", "--port", "0"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        output = await _banner(process)
        first_line = output.split(b"\n", 1)[0].decode()
        assert first_line.startswith("Dashboard: http://127.0.0.1:")
        url = first_line.removeprefix("Dashboard: ").rstrip("/")
        # the ledger is in a temporary directory, which the banner names
        state_dir = Path(output.decode().split("nexus-trio spend --state-dir ")[1].split()[0])
        assert state_dir.parent == tmp_path / "tmp"
        assert (state_dir / "spend.sqlite3").is_file()
        async with httpx.AsyncClient(timeout=5) as client:
            page = await client.get(f"{url}/")
            assert page.status_code == 200
            assert "text/html" in page.headers["content-type"]
            # 4 requests/s, half of them to the flaky backend until quality excludes it; the
            # dashboard then shows it excluded, and the result of its probe 10 s later. Then
            # SIGTERM: the event stream ends and the demo exits.
            with trio.fail_after(30):
                seen = await _watch_until_drained(client, url, process)
        assert seen == ["excluded", "probe", "end"]
        with trio.fail_after(10):
            assert await process.wait() == 0
        # removed at exit; nothing written where the demo ran
        assert list((tmp_path / "tmp").iterdir()) == []
        assert list(cwd.iterdir()) == []
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize("log_traffic", [False, True], ids=["quiet", "log-traffic"])
async def test_demo_traffic_stays_out_of_the_access_log_unless_asked(
    tmp_path: Path, log_traffic: bool
) -> None:
    cwd, env = _demo_dirs(tmp_path)
    flags = ["--log-traffic"] if log_traffic else []
    with (tmp_path / "stderr").open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "nexus_trio", "demo", "--port", "0", *flags],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        output = await _banner(process)
        url = output.split(b"\n", 1)[0].decode().removeprefix("Dashboard: ").rstrip("/")
        async with httpx.AsyncClient(timeout=10) as client:
            mine = await client.post(
                f"{url}/v1/chat/completions",
                json={"model": "demo", "messages": [{"role": "user", "content": "Hi"}]},
                headers={"X-Request-Id": "mine"},
            )
            assert mine.headers["x-request-id"] == "mine"

            async def generated_a_few() -> bool:
                stats = (await client.get(f"{url}/v1/stats")).json()
                return bool(stats["requests"]["total"] >= 9)

            with trio.fail_after(20):
                await poll(generated_a_few)
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = (tmp_path / "stderr").read_text()
    logged = re.findall(r" nexus_trio\.access: request request_id=(\S+)", log)
    generated = [request_id for request_id in logged if request_id.startswith("demo-traffic-")]
    assert "mine" in logged
    if log_traffic:
        assert len(generated) >= 8
    else:
        assert logged == ["mine"]


async def _watch_until_drained(
    client: httpx.AsyncClient, url: str, process: trio.Process
) -> list[str]:
    """Read the dashboard's events to their end; SIGTERM the demo once a probe was seen."""
    seen: list[str] = []
    buffer = b""
    async with client.stream("GET", f"{url}/v1/dashboard/events", timeout=None) as events:
        async for chunk in events.aiter_raw():
            buffer += chunk
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                name, _, data = block.partition(b"\ndata: ")
                if name == b"event: end":
                    seen.append("end")
                if name != b"event: snapshot" or "probe" in seen:
                    continue
                flaky = msgspec.json.decode(data)["backends"]["slow-flaky"]
                state, reason = flaky["quality_state"], flaky["exclusion_reason"]
                if not seen and state == "excluded":
                    seen.append("excluded")
                # The probe either readmits it or excludes it again, for that reason.
                elif seen == ["excluded"] and (state == "healthy" or reason == "probe_failed"):
                    seen.append("probe")
                    process.send_signal(signal.SIGTERM)
    return seen


def test_demo_on_a_busy_port_exits_1_with_one_line_leaving_nothing(tmp_path: Path) -> None:
    cwd, env = _demo_dirs(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "nexus_trio", "demo", "--port", str(port), "--no-traffic"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("nexus-trio:")]
    assert errors == [
        f"nexus-trio: cannot listen on 127.0.0.1:{port}: Address already in use"
        " (choose another with --port N)"
    ]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert list((tmp_path / "tmp").iterdir()) == []
    assert list(cwd.iterdir()) == []
