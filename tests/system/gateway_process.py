"""A real ``nexus-trio serve`` subprocess: starting it from a config text, what it logged, and
reading its ``/health``, ``/v1/stats`` and access log."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

READY_MARK = "nexus-trio ready on http://"
#: The ready line, in the text or the JSON log format; group 1 is the port.
READY_LINE = re.compile(re.escape(READY_MARK) + r"[^\s\"]+:(\d+)")


@dataclass
class GatewayProcess:
    """A running ``nexus-trio serve`` and what it logged."""

    process: trio.Process
    lines: list[str] = field(default_factory=list)
    ready: trio.Event = field(default_factory=trio.Event)
    exited: trio.Event = field(default_factory=trio.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait_exit(self) -> int:
        """Wait for the process to exit; returns its status (callers bound the wait)."""
        return await self.process.wait()

    def log_text(self) -> str:
        return "\n".join(self.lines)

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        buffer = b""
        async for chunk in self.process.stderr:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                self.lines.append(line)
                ready = READY_LINE.search(line)
                if ready is not None and not self.ready.is_set():
                    self.port = int(ready.group(1))
                    self.ready.set()
        if buffer:
            self.lines.append(buffer.decode(errors="replace"))
        self.exited.set()


GatewayFactory = Callable[..., Awaitable[GatewayProcess]]


@asynccontextmanager
async def launched_gateways(
    nursery: trio.Nursery, directory: Path
) -> AsyncIterator[GatewayFactory]:
    """Start ``nexus-trio serve`` with a config text (written into ``directory``); each start
    waits until the process reports ready. On exit every gateway still running is killed."""
    started: list[GatewayProcess] = []

    async def start(
        config_text: str,
        *,
        env: dict[str, str] | None = None,
        open_files: tuple[int, int] | None = None,
        program: Sequence[str] = (sys.executable, "-m", "nexus_trio"),
    ) -> GatewayProcess:
        """``open_files``: the (soft, hard) ``RLIMIT_NOFILE`` the process starts with;
        ``program``: the command ``serve --config PATH`` follows (an installed ``nexus-trio``)."""
        path = directory / f"nexus-{len(started)}.toml"
        path.write_text(config_text)

        def limit_open_files() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

        process = await trio.lowlevel.open_process(
            [*program, "serve", "--config", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            preexec_fn=limit_open_files,
        )
        gateway = GatewayProcess(process)
        started.append(gateway)
        nursery.start_soon(gateway._read_stderr)
        with trio.fail_after(15):
            async with trio.open_nursery() as waiters:

                async def first_of(event: trio.Event) -> None:
                    await event.wait()
                    waiters.cancel_scope.cancel()

                waiters.start_soon(first_of, gateway.ready)
                waiters.start_soon(first_of, gateway.exited)
        if not gateway.ready.is_set():
            raise AssertionError(f"gateway exited early:\n{gateway.log_text()}")
        return gateway

    try:
        yield start
    finally:
        for gateway in started:
            if gateway.process.returncode is None:
                gateway.process.send_signal(signal.SIGKILL)
                await gateway.process.wait()


def access_records(gateway: GatewayProcess) -> list[dict[str, Any]]:
    """The access-log records a gateway with ``[logging] format = "json"`` wrote so far."""
    records = []
    for line in gateway.lines:
        if line.startswith("{") and '"nexus_trio.access"' in line:
            record: dict[str, Any] = json.loads(line)
            records.append(record)
    return records


async def in_flight(client: httpx.AsyncClient, url: str) -> int:
    response = await client.get(f"{url}/health")
    value: int = response.json()["in_flight_requests"]
    return value


async def stats(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """The gateway's ``/v1/stats`` document."""
    body: dict[str, Any] = (await client.get(f"{url}/v1/stats")).json()
    return body
