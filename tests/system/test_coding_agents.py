"""Claude Code and Codex CLI themselves, each completing a one-shot prompt through a real
``nexus-trio serve`` in front of a simulated backend (issue 24, "Real clients, in CI").

Claude Code speaks the Anthropic Messages API (``POST /v1/messages``, its key as
``x-api-key``), Codex CLI the OpenAI Responses API (``POST /v1/responses``, a bearer key); the
gateway translates both to chat completions for the simulator. Each agent offers its tools, so
the simulator first calls the first one (with arguments ``{}``, which the agent rejects and
reports back as the tool's result) and then answers in text: the run is a whole tool round trip
through the gateway, and the answer must reach the agent's standard output. Inbound keys are on;
every other connection the agents try goes to a :class:`~tests.system.coding_agents.Tripwire`
and fails the test. Neither agent retries (``CLAUDE_CODE_MAX_RETRIES=0``; Codex's
``request_max_retries`` and ``stream_max_retries``): the gateway's first answer must do, and a
failure shows at once, with the agent's message, instead of after minutes of backoff.
``tests/system/agents/install.sh`` installs them; without ``node`` or ``npm`` these tests are
skipped, except under CI (``CI`` set), where that fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from nexus_trio.simulator.completion import token
from tests.system.coding_agents import AgentRun, Agents, Tripwire, agent_env, find_agents, run_agent
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory, GatewayProcess, access_records
from tests.system.polling import poll

pytestmark = pytest.mark.system

Backends = Callable[..., Awaitable[SimulatedBackend]]
MODEL = "sim-coder"
AGENT_KEY = "agent-key-0123456789"
WORDS = 10
ANSWER = "".join(token(index) for index in range(WORDS))
"""The simulator's text answer: "Hello from the simulated backend, one token at a time.\""""
PROMPT = "say hi"
CODEX_CONFIG = """\
model = "{model}"
model_provider = "nexus"
# no plugin catalogue sync (git to github.com, chatgpt.com) and no analytics (ab.chatgpt.com)
[features]
plugins = false
[analytics]
enabled = false
[model_providers.nexus]
name = "nexus"
base_url = "{url}/v1"
env_key = "NEXUS_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"""


@pytest.fixture(scope="session")
def agents() -> Agents:
    """Claude Code and Codex CLI; skips without ``node`` or ``npm`` (fails under CI)."""
    return find_agents()


@pytest.fixture
async def tripwire(nursery: trio.Nursery) -> Tripwire:
    wire = Tripwire()
    await nursery.start(wire.run)
    return wire


async def keyed_gateway(
    start_backend: Backends, start_gateway: GatewayFactory
) -> tuple[SimulatedBackend, GatewayProcess]:
    """The simulator serving :data:`MODEL` behind a gateway with one inbound key, ``agent``
    (:data:`AGENT_KEY`), and a JSON access log."""
    backend = await start_backend(
        name="sim", models=(MODEL,), ttft_ms=5, tokens_per_second=0, completion_tokens=WORDS
    )
    extra = '[logging]\nformat = "json"\n[[keys]]\nname = "agent"\nkey_env = "AGENT_KEY"\n'
    gateway = await start_gateway(
        gateway_config(backend, extra=extra), env={"AGENT_KEY": AGENT_KEY}
    )
    return backend, gateway


def workdir(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway home and an empty working directory for one agent run."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    return home, work


def chat_bodies(backend: SimulatedBackend) -> list[dict[str, Any]]:
    """The chat-completions requests the gateway sent the simulator, in order."""
    received = [r for r in backend.received if r.path == "/v1/chat/completions"]
    return [msgspec.json.decode(r.body) for r in received]


async def assert_served(
    gateway: GatewayProcess, backend: SimulatedBackend, route: str, run: AgentRun
) -> None:
    """The agent made two requests, both ``POST route`` answered 200 as streams and attributed
    to the key ``agent``, each one chat completion: the first offering the agent's tools (the
    simulator called one), the second carrying the call's result (answered in text)."""
    bodies = chat_bodies(backend)
    with trio.fail_after(5):  # access-log lines arrive through the process's stderr pipe
        await poll(lambda: len(access_records(gateway)) >= len(bodies))
    records = access_records(gateway)
    seen = [(r["method"], r["path"].split("?")[0], r["status"], r["stream"]) for r in records]
    assert seen == [("POST", route, 200, True)] * 2, str(run)
    assert [r["served_model"] for r in records] == [MODEL] * 2
    async with httpx.AsyncClient(timeout=10) as client:
        headers = {"authorization": f"Bearer {AGENT_KEY}"}
        stats = (await client.get(f"{gateway.url}/v1/stats", headers=headers)).json()
    assert stats["role"] == "tenant"
    assert stats["requests"]["success"] == stats["requests"]["total"] == 2
    first, second = bodies
    assert first["tools"]
    assert second["tools"] == first["tools"]
    assert [m for m in first["messages"] if m["role"] == "tool"] == []
    assert [m for m in second["messages"] if m["role"] == "tool"] != []


async def test_claude_code_answers_through_the_gateway(
    agents: Agents,
    tripwire: Tripwire,
    start_backend: Backends,
    start_gateway: GatewayFactory,
    tmp_path: Path,
) -> None:
    """``claude -p "say hi" --model sim-coder`` with ``ANTHROPIC_BASE_URL`` at the gateway."""
    backend, gateway = await keyed_gateway(start_backend, start_gateway)
    home, work = workdir(tmp_path)
    env = agent_env(
        home,
        tripwire,
        ANTHROPIC_BASE_URL=gateway.url,
        ANTHROPIC_API_KEY=AGENT_KEY,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_MAX_RETRIES="0",
    )
    run = await run_agent([agents.claude, "-p", PROMPT, "--model", MODEL], env=env, cwd=work)

    assert run.returncode == 0, str(run)
    assert ANSWER in run.stdout, str(run)
    await assert_served(gateway, backend, "/v1/messages", run)
    assert tripwire.seen == [], str(run)


async def test_codex_answers_through_the_gateway(
    agents: Agents,
    tripwire: Tripwire,
    start_backend: Backends,
    start_gateway: GatewayFactory,
    tmp_path: Path,
) -> None:
    """``codex exec --skip-git-repo-check "say hi"`` with a ``responses`` provider at the
    gateway (``$CODEX_HOME/config.toml``)."""
    backend, gateway = await keyed_gateway(start_backend, start_gateway)
    home, work = workdir(tmp_path)
    codex_home = home / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(CODEX_CONFIG.format(model=MODEL, url=gateway.url))
    env = agent_env(home, tripwire, CODEX_HOME=str(codex_home), NEXUS_KEY=AGENT_KEY)
    argv = [agents.codex, "exec", "--skip-git-repo-check", PROMPT]
    run = await run_agent(argv, env=env, cwd=work)

    assert run.returncode == 0, str(run)
    assert ANSWER in run.stdout, str(run)
    await assert_served(gateway, backend, "/v1/responses", run)
    assert tripwire.seen == [], str(run)
