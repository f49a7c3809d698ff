"""A real llama.cpp ``llama-server`` process serving SmolLM2-135M, and gateway configs in front
of such servers.

``scripts/build_real_backend.sh`` builds the server and unpacks the model into
``$NEXUS_REAL_BACKEND_DIR`` (default ``~/.cache/nexus-trio/real-backend``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.system.polling import poll

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
    #: Router mode: the models of this directory, one loaded at a time (``alias`` unused).
    models_dir: Path | None = None

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
            *self._models(),
            "-t",
            "1",
            "-c",
            "2048",
            "-np",
            str(self.slots),
            *self.extra,
        ]

    def _models(self) -> list[str]:
        if self.models_dir is None:
            return ["-m", str(self.real.model), "--alias", self.alias]
        return ["--models-dir", str(self.models_dir), "--models-max", "1"]

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
