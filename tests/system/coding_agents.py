"""Running Claude Code and Codex CLI, the real coding agents, against a gateway.

``agents/install.sh`` installs both from the committed lock (``npm ci``) outside the clone, in
``~/.cache/nexus-trio/agents/<lock hash>/``; :func:`find_agents` runs it once per session.
Each run gets a throwaway home, an environment holding only what the test gives it, and proxy
variables pointing at a :class:`Tripwire`: a loopback listener that records every connection
and answers none. The gateway is on loopback, which ``NO_PROXY`` exempts, so any request an
agent makes elsewhere (its vendor's API, telemetry, update checks, plugin catalogues) reaches
the tripwire, fails, and is recorded for the test to assert there were none.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
import trio

AGENTS_DIR = Path(__file__).parent / "agents"
INSTALL = AGENTS_DIR / "install.sh"
NPM_MISSING = 3
"""Exit status of ``install.sh`` when the agents are not installed and ``npm`` is missing."""

RUN_SECONDS = 60
"""The bound on one agent run (a run takes about a second here)."""

INSTALL_SECONDS = 600
"""The bound on installing both (about 650 MB of native binaries; 15 s on a fast network)."""


@dataclass(frozen=True)
class Agents:
    """The installed agents: ``bin`` is the ``node_modules/.bin`` holding both commands."""

    bin: Path

    @property
    def claude(self) -> str:
        return str(self.bin / "claude")

    @property
    def codex(self) -> str:
        return str(self.bin / "codex")


def agents_unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; under CI the coding agent tests must run (.ci/run installs them)")
    pytest.skip(f"{reason}: the coding agent tests need nodejs and npm (apt-get install npm)")


async def _install() -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(INSTALL_SECONDS):
        return await trio.run_process(
            ["bash", str(INSTALL)], capture_stdout=True, capture_stderr=True, check=False
        )


def find_agents() -> Agents:
    """Claude Code and Codex CLI, installed by ``install.sh`` unless the lock's copy is there;
    skips without ``node`` or ``npm`` (fails under CI)."""
    if shutil.which("node") is None:  # Codex's command is a node script
        agents_unavailable("node not found")
    done = trio.run(_install)
    if done.returncode == NPM_MISSING:
        agents_unavailable("npm not found and the agents are not installed yet")
    if done.returncode != 0:
        pytest.fail(f"installing the coding agents failed:\n{done.stderr.decode()}")
    return Agents(Path(done.stdout.decode().strip()) / "node_modules" / ".bin")


@dataclass
class Tripwire:
    """A loopback "proxy" that refuses everything: each connection's first line is recorded
    in :attr:`seen` (``CONNECT api.example.com:443 HTTP/1.1`` for an HTTPS request), then the
    connection is closed unanswered."""

    port: int = 0
    seen: list[str] = field(default_factory=list)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; ``started()`` once :attr:`port` is bound."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._refuse, listeners)

    async def _refuse(self, stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            with trio.move_on_after(2):
                data = await stream.receive_some(4096)
            self.seen.append(data.split(b"\r\n", 1)[0].decode(errors="replace"))

    def proxy_env(self) -> dict[str, str]:
        """Every proxy variable, in both spellings, at the tripwire; loopback exempt."""
        url = f"http://127.0.0.1:{self.port}"
        env = dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"), url)
        env["NO_PROXY"] = "127.0.0.1,localhost"
        return {**env, **{name.lower(): value for name, value in env.items()}}


def agent_env(home: Path, tripwire: Tripwire, **extra: str) -> dict[str, str]:
    """The whole environment of an agent run: ``PATH`` (for ``node``), a throwaway ``HOME``,
    the tripwire's proxy variables and ``extra``; nothing else of the test's environment."""
    base = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "LANG": "C.UTF-8"}
    return {**base, "TERM": "dumb", **tripwire.proxy_env(), **extra}


@dataclass(frozen=True)
class AgentRun:
    """What one agent run printed; ``str()`` is all of it, for assertion messages."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


async def _drain(stream: trio.abc.ReceiveStream | None, into: bytearray) -> None:
    assert stream is not None
    async for chunk in stream:
        into += chunk


def _kill_group(process: trio.Process) -> None:
    """SIGKILL the process group the agent leads: it, and whatever it started (Codex's node
    wrapper runs the native binary as a child)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_agent(
    argv: list[str], *, env: dict[str, str], cwd: Path, seconds: float = RUN_SECONDS
) -> AgentRun:
    """Run one agent command to its end in a session of its own, stdin empty, and return what
    it printed. Past ``seconds`` its whole process group is killed and the test fails with the
    output so far; the group is killed on any exit, so nothing it started outlives the test."""
    started = trio.current_time()
    out, err = bytearray(), bytearray()
    process = await trio.lowlevel.open_process(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        with trio.move_on_after(seconds) as deadline:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain, process.stdout, out)
                nursery.start_soon(_drain, process.stderr, err)
                await process.wait()
    finally:
        _kill_group(process)
        with trio.CancelScope(shield=True):
            await process.wait()
    run = AgentRun(
        process.returncode,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        trio.current_time() - started,
    )
    if deadline.cancelled_caught:
        pytest.fail(f"{Path(argv[0]).name} still running after {seconds} s, killed: {run}")
    return run
