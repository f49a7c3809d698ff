"""System tests: a real ``nexus-trio serve`` subprocess, simulated backends over real sockets.

Only loopback addresses are used. Every wait is a poll or an event under a deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend, SimulatorOptions
from tests.system.gateway_process import GatewayFactory, launched_gateways
from tests.system.node_client import NodeSDK, find_node_sdk


@pytest.fixture
async def start_gateway(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Start ``nexus-trio serve`` with a config text; waits until it reports ready."""
    async with launched_gateways(nursery, tmp_path) as start:
        yield start


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client for the test's gateways and backends. It lets an idle connection go
    after 2 s, before the gateway's own 5 s keep-alive timeout closes it: reusing one the
    server is closing at that moment fails a request ("Server disconnected")."""
    limits = httpx.Limits(keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        yield http


@pytest.fixture
async def start_backend(nursery: trio.Nursery) -> Callable[..., Awaitable[SimulatedBackend]]:
    """Start a simulated backend on 127.0.0.1 (a free port); returns it once bound."""

    async def start(**options: object) -> SimulatedBackend:
        backend = SimulatedBackend(SimulatorOptions(**options))  # type: ignore[arg-type]
        await nursery.start(backend.run)
        return backend

    return start


@pytest.fixture(scope="session")
def node_sdk() -> NodeSDK:
    """``node`` and the official Node ``openai`` SDK; skips without them (fails under CI)."""
    return find_node_sdk()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the dashboard screenshots the browser tests saved (CI prints where they are)."""
    from tests.system.browser import SCREENSHOTS

    if SCREENSHOTS:
        terminalreporter.section("dashboard screenshots")
        for path in SCREENSHOTS:
            terminalreporter.write_line(str(path))
