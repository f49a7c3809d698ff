"""Health probes over real sockets against simulated backends (docs/routing.md#health-checks,
docs/routing.md#capabilities)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from nexus_trio.config import parse_config
from nexus_trio.registry import Capabilities, HealthState
from nexus_trio.runtime.wiring import Wiring
from nexus_trio.simulator import SimulatedBackend, SimulatorOptions
from nexus_trio.upstream.client import upstream_http_client
from nexus_trio.upstream.transport import KeepAliveTransport

pytestmark = pytest.mark.system

StartBackend = Callable[..., Awaitable[SimulatedBackend]]


def probed_config(*backends: tuple[str, str, int]) -> str:
    """Backends (name, type, port) with no static models, each sending ``SIM_KEY``, probed with
    a failure threshold of one."""
    lines = ["[health_check]", "timeout_seconds = 5", "failure_threshold = 1", ""]
    for name, kind, port in backends:
        lines += [
            "[[backends]]",
            f'name = "{name}"',
            f'url = "http://127.0.0.1:{port}"',
            f'type = "{kind}"',
            'api_key_env = "SIM_KEY"',
            "",
        ]
    return "\n".join(lines)


async def test_ollama_and_generic_backends_are_probed(start_backend: StartBackend) -> None:
    sim_ollama = await start_backend(
        models=("llama3.1:8b", "llava:7b"), embedding_models=("nomic-embed-text",), name="o"
    )
    sim_generic = await start_backend(models=("demo",), name="g")
    text = probed_config(("o", "ollama", sim_ollama.port), ("g", "generic", sim_generic.port))
    transport = KeepAliveTransport()
    async with upstream_http_client(transport) as http:
        wiring = Wiring.build(parse_config(text), {"SIM_KEY": "sk-sim"}, http, transport=transport)
        with trio.fail_after(10):
            await wiring.health_checker().sweep()
    ollama, generic = wiring.registry.get("o"), wiring.registry.get("g")
    assert ollama is not None
    assert generic is not None
    assert (ollama.health, generic.health) == (HealthState.HEALTHY, HealthState.HEALTHY)
    assert ollama.discovered_models == {"llama3.1:8b", "llava:7b", "nomic-embed-text"}
    assert ollama.detected_capabilities == {
        "llama3.1:8b": Capabilities(
            vision=False, tools=True, embeddings=False, context_length=8192
        ),
        "llava:7b": Capabilities(vision=True, tools=True, embeddings=False, context_length=8192),
        "nomic-embed-text": Capabilities(
            vision=False, tools=False, embeddings=True, context_length=512
        ),
    }
    assert generic.discovered_models == {"demo"}
    requests = [(r.method, r.path) for r in sim_ollama.received + sim_generic.received]
    assert sorted(requests) == [
        ("GET", "/api/tags"),
        ("GET", "/v1/models"),
        ("POST", "/api/show"),
        ("POST", "/api/show"),
        ("POST", "/api/show"),
    ]
    [listed] = [r for r in sim_generic.received if r.path == "/v1/models"]
    assert (b"authorization", b"Bearer sk-sim") in listed.headers


async def test_a_stopped_backend_becomes_unhealthy() -> None:
    backend = SimulatedBackend(SimulatorOptions(models=("demo",), name="s"))
    transport = KeepAliveTransport()
    async with upstream_http_client(transport) as http:
        async with trio.open_nursery() as nursery:
            await nursery.start(backend.run)
            config_text = probed_config(("s", "vllm", backend.port))
            wiring = Wiring.build(parse_config(config_text), {}, http, transport=transport)
            checker = wiring.health_checker()
            with trio.fail_after(10):
                await checker.sweep()
            nursery.cancel_scope.cancel()  # the simulator stops: its port refuses connections
        registered = wiring.registry.get("s")
        assert registered is not None
        assert registered.health is HealthState.HEALTHY
        with trio.fail_after(10):
            await checker.sweep()
    assert registered.health is HealthState.UNHEALTHY
    assert registered.discovered_models == {"demo"}
