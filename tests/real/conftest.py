"""Real-server tests: real ``nexus-trio serve`` processes in front of real llama.cpp servers.

``scripts/build_real_backend.sh`` builds ``llama-server`` and unpacks the SmolLM2-135M model
into ``$NEXUS_REAL_BACKEND_DIR`` (default ``~/.cache/nexus-trio/real-backend``), once per
machine. Without them these tests skip, naming that command; with ``CI`` set they fail instead,
so CI can never pass without running them.

Each test starts the ``llama-server`` processes it needs (``-t 1 -np 2``: one thread, two
slots); each binds a free loopback port (``--port 0``, read back from its log) and is waited for
until ``/health`` answers 200, under a deadline; teardown kills them. The gateway fixture is the
system tier's (``start_gateway``). Prompts are tiny and ``max_tokens`` small: the model decodes
about 100 tokens/s on 2 cores.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.system.conftest import GatewayFactory, poll, start_gateway

__all__ = ["GatewayFactory", "LlamaServer", "ServerFactory", "start_gateway"]

BUILD_COMMAND = "scripts/build_real_backend.sh"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Starting takes < 1 s here; the margin is for a machine busy with other builds and tests.
START_SECONDS = 30.0
#: What llama-server logs once bound (``--port 0`` binds a free port).
LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")


def backend_dir() -> Path:
    default = Path.home() / ".cache" / "nexus-trio" / "real-backend"
    return Path(os.environ.get("NEXUS_REAL_BACKEND_DIR", default))


@dataclass(frozen=True)
class RealBackend:
    """Where the built server and the model are."""

    binary: Path
    model: Path


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


@dataclass
class LlamaServer:
    """One ``llama-server`` process serving the model under ``alias``; ``name`` is its
    backend name in gateway configs."""

    real: RealBackend
    name: str
    alias: str
    extra: tuple[str, ...]
    log: Path
    slots: int = 2
    port: int = 0
    process: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.real.binary),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-m",
            str(self.real.model),
            "--alias",
            self.alias,
            "-t",
            "1",
            "-c",
            "2048",
            "-np",
            str(self.slots),
            *self.extra,
        ]

    async def start(self) -> None:
        """Start the process and wait until ``/health`` answers 200 (bounded here).

        The first start binds port 0 and reads the port from the server's log; a restart binds
        the same port again.
        """
        logged = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = await trio.lowlevel.open_process(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        process = self.process

        async def healthy(http: httpx.AsyncClient) -> bool:
            if process.returncode is not None:
                raise AssertionError(f"llama-server exited early:\n{self.log_tail()}")
            if self.port == 0:
                with self.log.open("rb") as log:
                    log.seek(logged)
                    found = LISTENING.search(log.read())
                if found is None:
                    return False
                self.port = int(found[1])
            try:
                response = await http.get(f"{self.url}/health")
            except httpx.TransportError:
                return False
            return response.status_code == 200

        async with httpx.AsyncClient() as http:
            with trio.fail_after(START_SECONDS):
                await poll(lambda: healthy(http))

    async def kill(self) -> None:
        """SIGKILL the process and wait until it is gone (its port is then free again)."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            with trio.fail_after(10):
                await self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        """A document straight from the server (not through the gateway)."""
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.url}{path}", **kwargs)
        response.raise_for_status()
        return response.json()


ServerFactory = Callable[..., Awaitable[LlamaServer]]


@pytest.fixture
async def start_llama(real_backend: RealBackend, tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """Start a ``llama-server`` (alias, extra flags); returns it once healthy.

    Its backend name is ``name``, by default the alias; ``slots`` requests run at once (``-np``).
    """
    started: list[LlamaServer] = []

    async def start(
        alias: str, *extra: str, name: str | None = None, slots: int = 2
    ) -> LlamaServer:
        log = tmp_path / f"llama-{len(started)}.log"
        server = LlamaServer(real_backend, name or alias, alias, tuple(extra), log, slots)
        started.append(server)
        await server.start()
        return server

    yield start
    for server in started:
        with trio.CancelScope(shield=True):
            await server.kill()


def real_config(
    *servers: LlamaServer | tuple[LlamaServer, str],
    server: str = "",
    health: str = "interval_seconds = 0.5",
    extra: str = "",
) -> str:
    """A gateway config with one ``llamacpp`` backend per server, no static models.

    A server may come with extra backend keys (``(server, 'priority = 10')``). What a backend
    serves is whatever the health probe discovers.
    """
    lines = ["[server]", 'host = "127.0.0.1"', "port = 0", server, "", extra, ""]
    lines += ["[health_check]", health, ""]
    for entry in servers:
        llama, keys = entry if isinstance(entry, tuple) else (entry, "")
        lines += [
            "[[backends]]",
            f'name = "{llama.name}"',
            f'url = "{llama.url}"',
            'type = "llamacpp"',
            keys,
            "",
        ]
    return "\n".join(lines)


def sdk_client(url: str, api_key: str = "client-key") -> openai.OpenAI:
    """The official SDK's sync client, for worker threads (its async client leaks async
    generators under trio's strict finalizer, which this suite turns into errors). No retries:
    every failure must be the gateway's answer, not hidden by the SDK."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=30)


async def get_json(url: str, path: str) -> Any:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}{path}")
    response.raise_for_status()
    return response.json()


def backend_stats(stats: Any, name: str) -> Any:
    """One backend's object in a ``/v1/stats`` document."""
    (found,) = [backend for backend in stats["backends"] if backend["name"] == name]
    return found


def agent_quality(stats: Any, backend: str, model: str) -> Any:
    """One agent's ``quality`` object (None without data) in a ``/v1/stats`` document."""
    (agent,) = [a for a in backend_stats(stats, backend)["agents"] if a["model"] == model]
    return agent["quality"]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def metrics_text(url: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/metrics")
    response.raise_for_status()
    return response.text


async def wait_metric(url: str, name: str, value: float, **labels: str) -> None:
    """Poll ``/metrics`` until :func:`metric_value` is ``value`` (a request is counted when it
    has ended, possibly just after its client saw the end); callers bound the wait."""

    async def reached() -> bool:
        return metric_value(await metrics_text(url), name, **labels) == value

    await poll(reached)
