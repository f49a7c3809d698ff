"""The simulated backend under test: its options (read per request, so a test may change them
mid-test), the running server on 127.0.0.1, and ``client``, an HTTP client whose base URL is
that server (it stands in for the system tier's plain ``client`` in this directory)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend, SimulatorOptions
from tests.system.simulator.exchanges import TOKENS


@pytest.fixture
def options() -> SimulatorOptions:
    return SimulatorOptions(
        models=("demo", "llava:7b"),
        embedding_models=("nomic-embed-text",),
        ttft_ms=5,
        tokens_per_second=2000,
        completion_tokens=TOKENS,
        seed=7,
        name="sim-a",
    )


@pytest.fixture
async def backend(nursery: trio.Nursery, options: SimulatorOptions) -> SimulatedBackend:
    backend = SimulatedBackend(options)
    await nursery.start(backend.run)
    return backend


@pytest.fixture
async def client(backend: SimulatedBackend) -> AsyncIterator[httpx.AsyncClient]:
    base_url = f"http://127.0.0.1:{backend.port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        yield client
