"""The ``/metrics`` contract of docs/metrics.md#metrics: every family, its type, its label names,
bounded values.

Traffic covering every code path — plain, streaming, a client error, an upstream error, a
retry, a fallback, a truncated stream, a 429 with a cooldown, a client that disconnects, a
quality panic, an unknown model, a health sweep, a recompute and two reloads — is driven
through the in-process app; then ``/metrics`` is parsed with prometheus_client's own parser
and checked row by row against the table of docs/metrics.md#metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from nexus_trio.quality import AgentState, Outcome
from nexus_trio.routing import RejectionReason
from nexus_trio.runtime.supervisor import Supervisor
from nexus_trio.spend import BudgetLevel
from tests.component.client import CHAT, PATH, STREAM_CHAT, ASGICall
from tests.component.fake_upstream import (
    ChunkStream,
    chunk,
    ok,
    raw_response,
    sse,
    stream_response,
    truncated_stream,
)
from tests.component.in_process import Gateway

#: docs/metrics.md#metrics, row by row: family name (as the parser names it) -> (type, label names).
METRICS_TABLE: dict[str, tuple[str, frozenset[str]]] = {
    "nexus_requests": ("counter", frozenset({"model", "backend", "code", "stream", "key"})),
    "nexus_request_duration_seconds": (
        "histogram",
        frozenset({"model", "backend", "stream", "key"}),
    ),
    "nexus_upstream_attempts": ("counter", frozenset({"backend", "model", "outcome"})),
    "nexus_agent_ttft_seconds": ("histogram", frozenset({"backend", "model"})),
    "nexus_agent_error_rate": ("gauge", frozenset({"backend", "model"})),
    "nexus_agent_success_rate_24h": ("gauge", frozenset({"backend", "model"})),
    "nexus_agent_request_count_1h": ("gauge", frozenset({"backend", "model"})),
    "nexus_agent_state": ("gauge", frozenset({"backend", "model", "state"})),
    "nexus_quality_recompute_duration_seconds": ("histogram", frozenset()),
    "nexus_reconciler_exclusions": ("counter", frozenset({"reconciler", "reason"})),
    "nexus_routing_duration_seconds": ("histogram", frozenset()),
    "nexus_gateway_overhead_seconds": ("histogram", frozenset({"stream"})),
    "nexus_tokens": ("counter", frozenset({"model", "backend", "type"})),
    "nexus_in_flight_requests": ("gauge", frozenset()),
    "nexus_backend_pending_requests": ("gauge", frozenset({"backend"})),
    "nexus_backend_up": ("gauge", frozenset({"backend"})),
    "nexus_health_check_duration_seconds": ("histogram", frozenset({"backend"})),
    "nexus_retries": ("counter", frozenset({"backend"})),
    "nexus_fallbacks": ("counter", frozenset({"from_model", "to_model"})),
    "nexus_stream_truncated": ("counter", frozenset({"backend", "reason"})),
    "nexus_quality_panic": ("counter", frozenset({"model"})),
    "nexus_queue_depth": ("gauge", frozenset()),
    "nexus_capacity_rejections": ("counter", frozenset({"code"})),
    "nexus_config_reloads": ("counter", frozenset({"result"})),
    "nexus_build_info": ("gauge", frozenset({"version"})),
    "nexus_spend_usd": ("counter", frozenset({"key", "backend", "model", "estimated"})),
    "nexus_budget_spent_usd": ("gauge", frozenset()),
    "nexus_budget_limit_usd": ("gauge", frozenset()),
    "nexus_budget_state": ("gauge", frozenset({"state"})),
    "nexus_state_store_up": ("gauge", frozenset({"store"})),
}

BACKENDS = {"a", "b", "c"}
MODELS = {"m", "x", "f", "p"}
#: The closed set of values of each bounded label (docs/metrics.md#metrics,
#: docs/quality.md#outcomes, docs/proxying.md#when-nothing-can-serve).
BOUNDED: dict[str, set[str]] = {
    "code": {"2xx", "3xx", "4xx", "5xx", "cancelled", "overloaded", "queue_full", "queue_timeout"},
    "stream": {"true", "false"},
    "outcome": {outcome.value for outcome in Outcome},
    "state": {state.value for state in AgentState} | {level.value for level in BudgetLevel},
    "key": {"default"},
    "estimated": {"true", "false"},
    "result": {"ok", "error"},
    "store": {"ledger", "redis"},
    "type": {"prompt", "completion"},
    "reconciler": {
        "request_analyzer",
        "health",
        "privacy",
        "tier",
        "budget",
        "quality",
        "scheduler",
    },
    "backend": BACKENDS | {"none"},
    "model": MODELS | {"none"},
    "from_model": MODELS,
    "to_model": MODELS,
}
#: ``reason`` is the rejection reason in one family and the truncation reason in another.
REASONS = {
    "nexus_reconciler_exclusions": {reason.value for reason in RejectionReason},
    "nexus_stream_truncated": {
        "upstream_reset",
        "upstream_closed",
        "idle_timeout",
        "max_duration",
        "drain",
    },
}

CONFIG = """
[health_check]
interval_seconds = 30
[routing]
max_retries = 2
[routing.fallbacks]
"x" = ["f"]
[quality]
consecutive_failures = 2
min_requests = 100
[[backends]]
name = "a"
url = "http://a.test"
type = "generic"
priority = 10
models = ["m", "x"]
[[backends]]
name = "b"
url = "http://b.test"
type = "vllm"
priority = 20
models = ["m", "f"]
[[backends]]
name = "c"
url = "http://c.test"
type = "generic"
priority = 30
models = ["p"]
[[pricing]]
backend = "b"
input_usd_per_million = 1.0
output_usd_per_million = 2.0
"""

Answer = Callable[[], httpx.Response]


@dataclass
class Scripted:
    """A fake backend: ``GET /v1/models`` lists its models; each inference request gets the
    next queued answer (the test queues exactly what it expects to be asked)."""

    models: list[str]
    answers: list[Answer] = field(default_factory=list)

    async def __call__(self, request: httpx.Request, body: bytes) -> httpx.Response:
        if request.method == "GET":
            listing = {"object": "list", "data": [{"id": m} for m in self.models]}
            return raw_response(200, msgspec.json.encode(listing))
        assert self.answers, f"unexpected request to {request.url.host}"
        return self.answers.pop(0)()


def fails(status: int, **headers: str) -> Answer:
    return lambda: raw_response(status, b'{"error": {"message": "boom"}}', **headers)


def stream_with_usage() -> httpx.Response:
    usage = {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}}
    return stream_response(ChunkStream(sse(chunk("hi"), chunk(None, "stop"), usage)))


def families_of(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


async def scrape(gateway: Gateway) -> str:
    response = await gateway.app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    text: str = (await response.get_data()).decode()
    return text


def series(text: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    return {
        (s.name, frozenset(s.labels.items()))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def post(gateway: Gateway, body: dict[str, Any], **expect: str) -> Any:
    response = await gateway.post(PATH, body)
    await response.get_data()
    for header, value in expect.items():
        assert response.headers[f"x-nexus-{header.replace('_', '-')}"] == value, header
    return response


async def vanish_mid_stream(gateway: Gateway, upstream: Scripted) -> None:
    stream = ChunkStream([*sse(chunk("a")), trio.Event()])
    upstream.answers.append(lambda: stream_response(stream))
    call = ASGICall(gateway.app, PATH, msgspec.json.encode(STREAM_CHAT))
    async with trio.open_nursery() as nursery:
        await nursery.start(call.run)
        with trio.fail_after(5):
            await call.next_body()
        call.gone.set()
        with trio.fail_after(5):
            await call.finished.wait()


async def every_code_path(gateway: Gateway, tmp_path: Path) -> None:
    a, b, c = Scripted(["m", "x"]), Scripted(["m", "f"]), Scripted(["p"])
    gateway.upstream.handlers.update({"a.test": a, "b.test": b, "c.test": c})
    wiring = gateway.wiring
    with trio.fail_after(5):
        await wiring.health_checker().sweep()  # health probes: every backend healthy

    a.answers.append(ok)
    await post(gateway, CHAT, backend="a")  # plain
    a.answers.append(stream_with_usage)
    await post(gateway, STREAM_CHAT, backend="a")  # streaming, usage in the last chunk
    a.answers.append(fails(400))
    assert (await post(gateway, CHAT, backend="a")).status_code == 400  # client error
    a.answers.append(fails(500))
    b.answers.append(ok)
    await post(gateway, CHAT, backend="b", route_reason="retry")  # retry after a 5xx
    a.answers.append(stream_with_usage)
    await post(gateway, STREAM_CHAT, backend="a")  # (a's run of failures ends)
    a.answers.append(truncated_stream)
    response = await post(gateway, STREAM_CHAT, backend="a")
    assert b"stream_truncated" in await response.get_data()  # truncated stream
    await vanish_mid_stream(gateway, a)  # the client goes away mid-stream
    a.answers.append(ok)
    await post(gateway, CHAT, backend="a")  # (a's run of failures ends again)
    a.answers.append(fails(500))
    b.answers.append(ok)
    fallback = await post(gateway, {**CHAT, "model": "x"}, backend="b", fallback_model="f")
    assert fallback.status_code == 200  # fallback x -> f
    a.answers.append(fails(429, **{"retry-after": "5"}))
    b.answers.append(ok)
    await post(gateway, CHAT, backend="b", route_reason="retry")  # a 429: a/m cools down
    b.answers.append(ok)
    await post(gateway, CHAT, backend="b")  # a/m removed by health: rate_limited
    c.answers += [fails(503), fails(502)]
    for _ in range(2):
        assert (await post(gateway, {**CHAT, "model": "p"}, backend="c")).status_code >= 500
    c.answers.append(ok)
    await post(gateway, {**CHAT, "model": "p"}, route_reason="quality_panic")  # all excluded
    unknown = await gateway.post(PATH, {**CHAT, "model": "no-such-model"})
    assert unknown.status_code == 404
    full = wiring.config.server.max_in_flight_requests
    wiring.state.in_flight.count += full  # the gateway is full: its own capacity refuses
    assert (await gateway.post(PATH, CHAT)).status_code == 503
    wiring.state.in_flight.count -= full
    wiring.quality_loop().tick()  # recompute: agent gauges

    path = tmp_path / "nexus.toml"
    supervisor = Supervisor(wiring.config, config_path=path)
    path.write_text(CONFIG)
    assert supervisor.reload(wiring)  # result="ok"
    path.write_text(CONFIG.replace("min_requests = 100", "min_requests = 0"))
    assert not supervisor.reload(wiring)  # result="error"
    assert not any(upstream.answers for upstream in (a, b, c))


@pytest.fixture
async def exercised(make_gateway: Callable[..., Gateway], tmp_path: Path) -> tuple[Gateway, str]:
    gateway = make_gateway(CONFIG)
    await every_code_path(gateway, tmp_path)
    return gateway, await scrape(gateway)


@pytest.mark.parametrize("name", list(METRICS_TABLE))
async def test_family_has_the_spec_type_and_label_names(
    exercised: tuple[Gateway, str], name: str
) -> None:
    _, text = exercised
    families = families_of(text)
    assert name in families, f"{name} missing from /metrics"
    family = families[name]
    kind, labels = METRICS_TABLE[name]
    assert family.type == kind
    assert family.samples, f"{name} has no sample after traffic covering every code path"
    for sample in family.samples:
        assert set(sample.labels) - {"le"} == labels, sample
        if kind == "histogram":
            assert sample.name in {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "counter":
            assert sample.name == f"{name}_total"
        else:
            assert sample.name == name


async def test_process_collector_is_exported(exercised: tuple[Gateway, str]) -> None:
    families = families_of(exercised[1])
    process = {name for name in families if name.startswith("process_")}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"} <= process
    assert families["process_cpu_seconds"].type == "counter"
    assert families["process_resident_memory_bytes"].type == "gauge"
    # the garbage collector's pauses show as collections per generation
    # (docs/operations.md#runtime-shape)
    assert families["python_gc_collections"].type == "counter"
    assert {s.labels["generation"] for s in families["python_gc_collections"].samples} == {
        "0",
        "1",
        "2",
    }


async def test_label_values_are_bounded(exercised: tuple[Gateway, str]) -> None:
    gateway, text = exercised
    seen: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("nexus_"):
            continue
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label == "reason":
                    assert value in REASONS[family.name], (family.name, value)
                elif label in BOUNDED:
                    assert value in BOUNDED[label], (family.name, label, value)
                else:
                    assert label in {"le", "version"}, (family.name, label)
                seen.setdefault(f"{family.name}.{label}", set()).add(value)
    # the traffic really reached each bounded value it was meant to
    assert seen["nexus_requests.code"] == {"2xx", "4xx", "5xx", "cancelled"}
    assert seen["nexus_requests.stream"] == {"true", "false"}
    assert seen["nexus_requests.model"] == MODELS - {"x"} | {"none"}
    assert seen["nexus_requests.backend"] == BACKENDS | {"none"}
    assert seen["nexus_upstream_attempts.outcome"] == {o.value for o in Outcome}
    assert seen["nexus_stream_truncated.reason"] == {"upstream_closed"}
    assert seen["nexus_reconciler_exclusions.reason"] == {"rate_limited"}
    assert seen["nexus_config_reloads.result"] == {"ok", "error"}
    assert seen["nexus_tokens.type"] == {"prompt", "completion"}
    assert seen["nexus_fallbacks.from_model"] == {"x"}
    assert seen["nexus_fallbacks.to_model"] == {"f"}
    # 1/0 gauges, and one state per agent
    families = families_of(text)
    for name in ("nexus_agent_state", "nexus_backend_up", "nexus_build_info"):
        assert {s.value for s in families[name].samples} <= {0.0, 1.0}
    states: dict[tuple[str, str], float] = {}
    for s in families["nexus_agent_state"].samples:
        key = (s.labels["backend"], s.labels["model"])
        states[key] = states.get(key, 0.0) + s.value
    assert states
    assert set(states.values()) == {1.0}
    assert gateway.wiring.metrics.registry.get_sample_value(
        "nexus_quality_panic_total", {"model": "p"}
    )


async def test_unknown_models_add_no_series(exercised: tuple[Gateway, str]) -> None:
    gateway, text = exercised
    before = series(text)
    for index in range(1000):
        response = await gateway.post(PATH, {**CHAT, "model": f"unknown-{index:04d}"})
        assert response.status_code == 404
    after_text = await scrape(gateway)
    assert series(after_text) == before
    assert "unknown-0" not in after_text
    total = gateway.wiring.metrics.registry.get_sample_value(
        "nexus_requests_total",
        {"model": "none", "backend": "none", "code": "4xx", "stream": "false", "key": "default"},
    )
    assert total == 1001
