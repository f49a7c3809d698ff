"""What the routing, quality and capability tests route over: backends (a vLLM server at
``http://<name>.lan:8000`` serving :data:`MODEL`, healthy unless told otherwise; any
:class:`~nexus_trio.config.BackendConfig` field may be given) and routing intents over them."""

from __future__ import annotations

from typing import Any

from nexus_trio.config import BackendConfig
from nexus_trio.registry import Backend, HealthState
from nexus_trio.routing import Agent, Requirements, RoutingIntent, RoutingRequest

MODEL = "llama3:8b"


def backend_config(name: str, **fields: Any) -> BackendConfig:
    fields.setdefault("type", "vllm")
    fields.setdefault("models", [MODEL])
    return BackendConfig(name=name, url=f"http://{name}.lan:8000", **fields)


def backend(name: str = "b", health: HealthState = HealthState.HEALTHY, **fields: Any) -> Backend:
    made = Backend.from_config(backend_config(name, **fields), env={})
    made.health = health
    return made


def intent(
    *backends: Backend,
    model: str = MODEL,
    now: float = 100.0,
    stream: bool = True,
    **requirements: Any,
) -> RoutingIntent:
    """A request for ``model`` at ``now`` with every backend as a candidate."""
    request = RoutingRequest(
        model, stream=stream, requirements=Requirements(**requirements), now=now
    )
    candidates = [Agent(b, model) for b in backends]
    return RoutingIntent(request=request, resolved_model=model, candidates=candidates)


def names(routing_intent: RoutingIntent) -> list[str]:
    """The candidates' backend names, in order."""
    return [agent.backend.name for agent in routing_intent.candidates]
