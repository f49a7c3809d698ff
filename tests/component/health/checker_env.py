"""The checker's world: long-lived wiring over a fake upstream serving three backends
(Ollama, llama.cpp and a keyed generic one), and a health checker for them."""

from __future__ import annotations

import httpx

from nexus_trio.config import parse_config
from nexus_trio.registry import Backend
from nexus_trio.runtime.wiring import Wiring
from tests.component.fake_upstream import Handler, Upstream
from tests.component.health.fake_servers import listing, llamacpp, ollama

KEY = "sk-very-secret"
CONFIG = """
[health_check]
interval_seconds = 10
timeout_seconds = 5
failure_threshold = 2
recovery_threshold = 2
[[backends]]
name = "ollama"
url = "http://ollama.test"
type = "ollama"
[[backends]]
name = "llama"
url = "http://llama.test"
type = "llamacpp"
[[backends]]
name = "cloud"
url = "http://cloud.test/openai"
type = "generic"
api_key_env = "CLOUD_KEY"
models = ["static-model"]
"""


class Env:
    """Wiring over a fake upstream, and a checker for them."""

    def __init__(self, config_text: str = CONFIG) -> None:
        self.upstream = Upstream()
        transport = httpx.MockTransport(self.upstream)
        self.http = httpx.AsyncClient(transport=transport)
        self.wiring = Wiring.build(
            parse_config(config_text), {"CLOUD_KEY": KEY}, self.http, transport=transport
        )
        self.checker = self.wiring.health_checker()
        self.serve(ollama=ollama([], {}), llama=llamacpp(200), cloud=listing())

    def serve(self, **handlers: Handler) -> None:
        for name, handler in handlers.items():
            self.upstream.handlers[f"{name}.test"] = handler

    def backend(self, name: str) -> Backend:
        backend = self.wiring.registry.get(name)
        assert backend is not None
        return backend

    def duration_sum(self, name: str) -> float | None:
        return self.wiring.metrics.registry.get_sample_value(
            "nexus_health_check_duration_seconds_sum", {"backend": name}
        )

    def paths(self, host: str) -> list[str]:
        return [f"{r.method} {r.url.path}" for r, _ in self.upstream.requests if r.url.host == host]
