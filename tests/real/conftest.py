"""Real-server tests: real ``nexus-trio serve`` processes in front of real llama.cpp servers.

``scripts/build_real_backend.sh`` builds ``llama-server`` and unpacks the SmolLM2-135M model
into ``$NEXUS_REAL_BACKEND_DIR`` (default ``~/.cache/nexus-trio/real-backend``), once per
machine. Without them these tests skip, naming that command; with ``CI`` set they fail instead,
so CI can never pass without running them.

Each test starts the ``llama-server`` processes it needs (``-t 1 -np 2``: one thread, two
slots); each binds a free loopback port (``--port 0``, read back from its log) and is waited for
until ``/health`` answers 200, under a deadline; teardown kills them. Gateways start as in the
system tier (``tests/system/gateway_process.py``). Prompts are tiny and ``max_tokens`` small:
the model decodes about 100 tokens/s on 2 cores.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.real.llama_server import (
    BUILD_COMMAND,
    MODEL_FILE,
    LlamaServer,
    RealBackend,
    ServerFactory,
    backend_dir,
)
from tests.system.gateway_process import GatewayFactory, launched_gateways


@pytest.fixture
async def start_gateway(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """The system tier's gateway: ``nexus-trio serve`` with a config text, once ready."""
    async with launched_gateways(nursery, tmp_path) as start:
        yield start


@pytest.fixture(scope="session")
def real_backend() -> RealBackend:
    """The built ``llama-server`` and model; skips without them (fails when ``CI`` is set)."""
    found = RealBackend(
        backend_dir() / "bin" / "llama-server", backend_dir() / "models" / MODEL_FILE
    )
    missing = [str(path) for path in (found.binary, found.model) if not path.is_file()]
    if missing:
        message = f"real llama-server not built ({', '.join(missing)}); run {BUILD_COMMAND}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture
async def start_llama(real_backend: RealBackend, tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """Start a ``llama-server`` (alias, extra flags); returns it once healthy.

    Its backend name is ``name``, by default the alias; ``slots`` requests run at once (``-np``).
    With ``router_models`` it is a router (``--models-dir``, ``--models-max 1``) serving the
    model file under each of those names, none loaded yet.
    """
    started: list[LlamaServer] = []

    async def start(
        alias: str,
        *extra: str,
        name: str | None = None,
        slots: int = 2,
        router_models: tuple[str, ...] = (),
    ) -> LlamaServer:
        log = tmp_path / f"llama-{len(started)}.log"
        server = LlamaServer(real_backend, name or alias, alias, tuple(extra), log, slots)
        if router_models:  # router mode: the model file under each name, one loaded at a time
            server.models_dir = tmp_path / f"models-{len(started)}"
            server.models_dir.mkdir()
            for model in router_models:
                (server.models_dir / f"{model}.gguf").symlink_to(real_backend.model)
        started.append(server)
        await server.start()
        return server

    yield start
    for server in started:
        with trio.CancelScope(shield=True):
            await server.kill()
