"""System tests: a real ``nexus-trio serve`` subprocess, simulated backends over real sockets.

Only loopback addresses are used. Every wait is a poll or an event under a deadline.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend, SimulatorOptions

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


@pytest.fixture
async def start_gateway(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Start ``nexus-trio serve`` with a config text; waits until it reports ready."""
    started: list[GatewayProcess] = []

    async def start(
        config_text: str,
        *,
        env: dict[str, str] | None = None,
        open_files: tuple[int, int] | None = None,
    ) -> GatewayProcess:
        """``open_files``: the (soft, hard) ``RLIMIT_NOFILE`` the process starts with."""
        path = tmp_path / f"nexus-{len(started)}.toml"
        path.write_text(config_text)

        def limit_open_files() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "nexus_trio", "serve", "--config", str(path)],
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

    yield start
    for gateway in started:
        if gateway.process.returncode is None:
            gateway.process.send_signal(signal.SIGKILL)
            await gateway.process.wait()


@pytest.fixture
async def start_backend(nursery: trio.Nursery) -> Callable[..., Awaitable[SimulatedBackend]]:
    """Start a simulated backend on 127.0.0.1 (a free port); returns it once bound."""

    async def start(**options: object) -> SimulatedBackend:
        backend = SimulatedBackend(SimulatorOptions(**options))  # type: ignore[arg-type]
        await nursery.start(backend.run)
        return backend

    return start


def gateway_config(*backends: SimulatedBackend, server: str = "", extra: str = "") -> str:
    """A config serving each backend's models, health checks off, on a free port."""
    lines = ["[server]", 'host = "127.0.0.1"', "port = 0", server, "", extra, ""]
    lines += ["[health_check]", "enabled = false", ""]
    for backend in backends:
        models = ", ".join(f'"{m}"' for m in backend.options.models)
        lines += [
            "[[backends]]",
            f'name = "{backend.options.name}"',
            f'url = "http://127.0.0.1:{backend.port}"',
            'type = "generic"',
            f"models = [{models}]",
            "",
        ]
    return "\n".join(lines)


async def poll(predicate: Callable[[], bool | Awaitable[bool]]) -> None:
    """Check ``predicate`` every 10 ms until it holds; the caller bounds it with ``fail_after``.

    For state with no event to wait on: another process, or counters of a simulated backend.
    """
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await trio.sleep(0.01)


def access_records(gateway: GatewayProcess) -> list[dict[str, Any]]:
    """The access-log records a gateway with ``[logging] format = "json"`` wrote so far."""
    records = []
    for line in gateway.lines:
        if line.startswith("{") and '"nexus_trio.access"' in line:
            record: dict[str, Any] = json.loads(line)
            records.append(record)
    return records


async def empty_request_bucket(
    client: httpx.AsyncClient, url: str, key: str, model: str
) -> tuple[int, int]:
    """Leave ``key``'s request bucket just emptied (docs/keys.md#rate-limits); returns the
    chat requests admitted and refused on the way. The caller bounds it with ``fail_after``.

    Requests go one after the other until one is refused (the burst is spent), then one every
    10 ms until one is admitted again: the refill had just made one whole request, which that
    one took. The bucket then holds almost nothing, so a request in the next ``60 / rpm``
    seconds (less those 10 ms) is refused, with ``Retry-After: ceil(60 / rpm)``.
    """
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    admitted = refused = 0
    while True:
        response = await client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        assert response.status_code in (200, 429), response.text
        if response.status_code == 429:
            refused += 1
            await trio.sleep(0.01)
            continue
        admitted += 1
        if refused:
            return admitted, refused


LIMITED_KEY = "limited-key"


async def gateway_with_limited_key(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    requests_per_minute: int,
) -> tuple[SimulatedBackend, GatewayProcess]:
    """Backend ``sim`` serving ``demo`` behind a gateway with a JSON access log and one named
    key, ``limited`` (:data:`LIMITED_KEY`), limited to ``requests_per_minute``."""
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    limits = f"""
[logging]
format = "json"
[metrics]
public = true
[[keys]]
name = "limited"
key_env = "LIMITED_KEY"
requests_per_minute = {requests_per_minute}
"""
    gateway = await start_gateway(
        gateway_config(backend, extra=limits), env={"LIMITED_KEY": LIMITED_KEY}
    )
    return backend, gateway


async def assert_refused_then_answered(
    client: httpx.AsyncClient, gateway: GatewayProcess, admitted: int, refused: int
) -> None:
    """After :func:`empty_request_bucket` and one SDK call retried once: the gateway counted one
    more refusal for ``limited`` and logged the refusal, then the answer."""
    metrics = (await client.get(f"{gateway.url}/metrics")).text
    counted = 'nexus_rate_limited_total{key="limited",kind="requests"}'
    assert f"{counted} {refused + 1}.0" in metrics
    with trio.fail_after(5):  # access-log lines arrive through the process's stderr pipe
        await poll(lambda: len(access_records(gateway)) == admitted + refused + 2)
    last_two = [(r["status"], r["error_code"]) for r in access_records(gateway)[-2:]]
    assert last_two == [(429, "rate_limit_exceeded"), (200, None)]


async def gateway_with_spent_budget(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    state_dir: Path,
) -> tuple[SimulatedBackend, GatewayProcess]:
    """Backend ``sim`` serving ``demo`` behind a gateway with a JSON access log, a $1 monthly
    budget with ``hard_limit_action = "reject"`` and prices at which one chat completion spends
    it all, after that one completion."""
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    budget = f"""
[logging]
format = "json"
[state]
dir = "{state_dir}"
[budget]
monthly_limit_usd = 1
hard_limit_action = "reject"
[[pricing]]
backend = "sim"
input_usd_per_million = 1000000
output_usd_per_million = 1000000
"""
    gateway = await start_gateway(gateway_config(backend, extra=budget))
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(timeout=10) as client:
        spent = await client.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert float(spent.headers["x-nexus-cost-usd"]) >= 1
    return backend, gateway


async def assert_answered_then_budget_refused(gateway: GatewayProcess) -> None:
    """The access log of a gateway from :func:`gateway_with_spent_budget` after one refused
    request."""
    with trio.fail_after(5):
        await poll(lambda: len(access_records(gateway)) == 2)
    assert [(r["status"], r["error_code"]) for r in access_records(gateway)] == [
        (200, None),
        (429, "budget_exceeded"),
    ]


async def in_flight(client: httpx.AsyncClient, url: str) -> int:
    response = await client.get(f"{url}/health")
    value: int = response.json()["in_flight_requests"]
    return value


class RawConnection:
    """One client TCP connection driven by hand (h11), for keep-alive and disconnect tests."""

    def __init__(self, stream: trio.SocketStream) -> None:
        import h11

        self._h11 = h11
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def send_request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
    ) -> None:
        h11 = self._h11
        all_headers = [("host", "gateway"), ("content-length", str(len(body))), *headers]
        data = self.conn.send(h11.Request(method=method, target=path, headers=all_headers))
        data += self.conn.send(h11.Data(data=body)) if body else b""
        data += self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(data)

    async def next_event(self) -> object:
        h11 = self._h11
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.stream.receive_some(65536))

    async def read_response(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of the next response (whole)."""
        h11 = self._h11
        status = 0
        headers: dict[str, str] = {}
        body = b""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return status, headers, body

    async def wait_eof(self) -> bytes:
        """Read until the server closes; returns whatever arrived before EOF."""
        data = b""
        while True:
            try:
                chunk = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return data
            if not chunk:
                return data
            data += chunk

    async def aclose(self) -> None:
        await self.stream.aclose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the dashboard screenshots the browser tests saved (CI prints where they are)."""
    from tests.system.browser import SCREENSHOTS

    if SCREENSHOTS:
        terminalreporter.section("dashboard screenshots")
        for path in SCREENSHOTS:
            terminalreporter.write_line(str(path))
