"""Registry backends for the routing, quality and capability tests: a vLLM server at
``http://<name>.lan:8000`` serving :data:`MODEL`, healthy unless told otherwise; any
:class:`~nexus_trio.config.BackendConfig` field may be given."""

from __future__ import annotations

from typing import Any

from nexus_trio.config import BackendConfig
from nexus_trio.registry import Backend, HealthState

MODEL = "llama3:8b"


def backend_config(name: str, **fields: Any) -> BackendConfig:
    fields.setdefault("type", "vllm")
    fields.setdefault("models", [MODEL])
    return BackendConfig(name=name, url=f"http://{name}.lan:8000", **fields)


def backend(name: str = "b", health: HealthState = HealthState.HEALTHY, **fields: Any) -> Backend:
    made = Backend.from_config(backend_config(name, **fields), env={})
    made.health = health
    return made
