"""Reading back what an in-process gateway did: the requests its fake upstream received, its
metrics, ``/v1/stats``, ``/metrics``, error bodies and the quality store."""

from __future__ import annotations

from typing import Any

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from nexus_trio.quality import AgentQualityMetrics
from tests.component.in_process import Gateway

#: Every sample of ``/metrics`` by (sample name, labels).
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --- what the upstream received ---------------------------------------------------------------


def hosts(gateway: Gateway) -> list[str]:
    """The backend of each upstream request, in order (``a`` for ``a.test``)."""
    return [request.url.host.removesuffix(".test") for request, _ in gateway.upstream.requests]


def models_sent(gateway: Gateway) -> list[tuple[str, str]]:
    """(backend, model of the forwarded body) of each upstream request, in order."""
    return [
        (request.url.host.removesuffix(".test"), msgspec.json.decode(body)["model"])
        for request, body in gateway.upstream.requests
    ]


# --- metrics ----------------------------------------------------------------------------------


def sample(gateway: Gateway, name: str, **labels: str) -> float | None:
    """One sample of the gateway's registry; None if it was never recorded."""
    return gateway.wiring.metrics.registry.get_sample_value(name, labels)


def attempts(gateway: Gateway, outcome: str, backend_name: str = "a", model: str = "m") -> float:
    """``nexus_upstream_attempts_total`` of one agent and outcome (0 if never counted)."""
    labels = {"backend": backend_name, "model": model, "outcome": outcome}
    return sample(gateway, "nexus_upstream_attempts_total", **labels) or 0.0


async def metrics_text(gateway: Gateway) -> str:
    response = await gateway.app.test_client().get("/metrics")
    text: str = (await response.get_data()).decode()
    return text


async def metric_samples(gateway: Gateway) -> Samples:
    """Every sample of ``/metrics``, parsed, by (sample name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(await metrics_text(gateway))
        for s in family.samples
    }


def gauge(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


# --- documents --------------------------------------------------------------------------------


async def error_of(response: Any) -> dict[str, Any]:
    """The ``error`` object of an error response."""
    error: dict[str, Any] = msgspec.json.decode(await response.get_data())["error"]
    return error


async def stats(gateway: Gateway) -> dict[str, Any]:
    response = await gateway.app.test_client().get("/v1/stats")
    assert response.status_code == 200
    body: dict[str, Any] = msgspec.json.decode(await response.get_data())
    return body


def backend_entry(document: dict[str, Any], name: str) -> dict[str, Any]:
    """One backend's object in a ``/v1/stats`` document."""
    entry: dict[str, Any] = next(b for b in document["backends"] if b["name"] == name)
    return entry


def agent_entry(document: dict[str, Any], name: str, model: str = "m") -> dict[str, Any] | None:
    """One agent's ``quality`` object in a ``/v1/stats`` document (None without data)."""
    agents = backend_entry(document, name)["agents"]
    found: dict[str, Any] | None = next(a for a in agents if a["model"] == model)["quality"]
    return found


# --- the quality store ------------------------------------------------------------------------


def tick(gateway: Gateway) -> None:
    """One recompute, as the quality loop runs it every ``metrics_interval_seconds``."""
    gateway.wiring.quality_loop().tick()


def quality(gateway: Gateway, backend_name: str = "a", model: str = "m") -> AgentQualityMetrics:
    return gateway.wiring.quality.get((backend_name, model))
