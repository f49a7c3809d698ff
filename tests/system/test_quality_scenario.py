"""The quality-tracking scenario end to end, over real sockets (docs/quality.md#exclusion,
docs/quality.md#ttft-penalty, docs/api.md#stats, docs/metrics.md#metrics).

Two simulated backends, A and B, serve one model behind a real ``nexus-trio serve``. The
quality settings are small so the whole story fits in a few seconds: recompute every 0.5 s,
probe after 1 s, fast ejection after 3 failures in a row, a 150 ms TTFT penalty threshold.
``[routing.weights] latency = 0`` leaves the TTFT penalty as the only latency signal;
``priority = 10, load = 90`` make A (priority 10) win whenever A and B are equally loaded, while
concurrent requests spread over both by load.

Phase 1 (one client, plain requests, all on A by priority): A starts failing → clients see no
error (each request is retried on B) → A is ejected within one recompute interval → A heals →
A is probed and readmitted within one probe interval.

Phase 2 (four clients, streaming, spread over A and B by load): B's first tokens get slow
(400 ms against the 150 ms threshold) → once its average TTFT is recomputed B's score is zeroed
and streaming traffic moves to A, except one probe stream to B per probe interval (reason
``probe``). ``/v1/stats`` and ``/metrics`` show each step.

``bench/quality_scenario.py`` runs the same story standalone and prints its timeline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from bench.quality_scenario import CONFIG, INTERVAL, MODEL, PATH, PROBE, SLOW_TTFT_MS, THRESHOLD_MS
from nexus_trio.simulator import SimulatedBackend
from tests.system.gateway_process import GatewayFactory, stats
from tests.system.polling import poll

pytestmark = pytest.mark.system

#: Slack for two processes, the event loop and the poll on a loaded CI machine.
MARGIN = 0.5


def scenario_config(a: SimulatedBackend, b: SimulatedBackend) -> str:
    """The scenario's gateway config: the one ``bench/quality_scenario.py`` runs."""
    return CONFIG.format(
        interval=INTERVAL,
        probe=PROBE,
        threshold=THRESHOLD_MS,
        port_a=a.port,
        port_b=b.port,
        model=MODEL,
    )


@dataclass(frozen=True)
class Result:
    """One client request as the client saw it."""

    sent: float
    done: float
    stream: bool
    status: int
    backend: str | None
    reason: str | None
    attempts: int
    #: A 2xx whose body is complete (a stream ended with [DONE], no truncation event).
    good: bool


class Clients:
    """Closed-loop clients recording every answer."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self.results: list[Result] = []

    async def one(self, *, stream: bool) -> Result:
        body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
        sent = trio.current_time()
        async with self.client.stream("POST", f"{self.url}{PATH}", json=body) as response:
            data = await response.aread()
        good = response.status_code == 200 and b"stream_truncated" not in data
        if stream:
            good = good and data.endswith(b"data: [DONE]\n\n")
        headers = response.headers
        result = Result(
            sent=sent,
            done=trio.current_time(),
            stream=stream,
            status=response.status_code,
            backend=headers.get("x-nexus-backend"),
            reason=headers.get("x-nexus-route-reason"),
            attempts=int(headers.get("x-nexus-attempts", "0")),
            good=good,
        )
        self.results.append(result)
        return result

    async def loop(self, stop: trio.Event, stream: bool) -> None:
        while not stop.is_set():
            await self.one(stream=stream)

    def between(self, start: float, end: float = float("inf")) -> list[Result]:
        """Requests sent in [start, end)."""
        return [r for r in self.results if start <= r.sent < end]


async def agent(client: httpx.AsyncClient, url: str, name: str) -> dict[str, Any] | None:
    """The quality of agent (``name``, demo) in ``/v1/stats``."""
    document = await stats(client, url)
    backend = next(b for b in document["backends"] if b["name"] == name)
    quality: dict[str, Any] | None = backend["agents"][0]["quality"]
    return quality


async def state_of(client: httpx.AsyncClient, url: str, name: str) -> str | None:
    quality = await agent(client, url, name)
    return None if quality is None else quality["state"]


async def scrape(client: httpx.AsyncClient, url: str) -> dict[tuple[str, frozenset[Any]], float]:
    text = (await client.get(f"{url}/metrics")).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_failing_then_slow_backend(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    client: httpx.AsyncClient,
) -> None:
    fast = {"ttft_ms": 20, "tokens_per_second": 0, "completion_tokens": 10, "models": (MODEL,)}
    a = await start_backend(name="A", **fast)
    b = await start_backend(name="B", **fast)
    gateway = await start_gateway(scenario_config(a, b))
    url = gateway.url
    clients = Clients(client, url)

    # --- phase 1: A fails, is ejected, heals, is probed back ------------------------------
    stop = trio.Event()
    with trio.fail_after(15):
        async with trio.open_nursery() as load:
            load.start_soon(clients.loop, stop, False)
            await poll(lambda: len(clients.results) >= 10)
            assert {r.backend for r in clients.results} == {"A"}  # preferred by priority

            failing_at = trio.current_time()
            a.options.error_rate = 1.0

            async def a_is(state: str) -> bool:
                return await state_of(client, url, "A") == state

            await poll(lambda: a_is("excluded"))
            excluded_seen = trio.current_time()
            assert excluded_seen - failing_at <= INTERVAL
            samples = await scrape(client, url)
            labels = {"backend": "A", "model": MODEL}
            assert value(samples, "nexus_agent_state", state="excluded", **labels) == 1.0
            assert value(samples, "nexus_agent_state", state="healthy", **labels) == 0.0

            healed_at = trio.current_time()
            a.options.error_rate = 0.0
            await poll(lambda: a_is("healthy"))
            readmitted = trio.current_time()
            assert readmitted - healed_at <= PROBE + MARGIN
            await poll(lambda: len(clients.between(readmitted)) >= 5)
            stop.set()
    phase1 = clients.results
    # not one client error; A's failures were retried on B
    assert [r for r in phase1 if not r.good] == []
    failing = clients.between(failing_at, excluded_seen)
    assert any(r.backend == "B" and r.attempts == 2 and r.reason == "retry" for r in failing)
    # excluded: nothing is tried on A, not even first
    ejected = [r for r in phase1 if excluded_seen <= r.sent and r.done <= healed_at]
    assert {(r.backend, r.attempts) for r in ejected} <= {("B", 1)}
    # the probe that readmitted A, then A by priority again
    probes = [r for r in clients.between(healed_at, readmitted) if r.reason == "probe"]
    assert [(r.backend, r.attempts) for r in probes] == [("A", 1)]
    assert {r.backend for r in clients.between(readmitted + 0.1)} == {"A"}

    # --- phase 2: B's first tokens get slow; streams move to A ----------------------------
    for backend in (a, b):
        backend.options.tokens_per_second = 50  # streams of 10 tokens: ~200 ms
    b.options.ttft_ms = SLOW_TTFT_MS
    stop = trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as load:
            slow_from = trio.current_time()
            for _ in range(4):
                load.start_soon(clients.loop, stop, True)

            async def b_penalised() -> bool:
                quality = await agent(client, url, "B")
                return quality is not None and (quality["avg_ttft_ms"] or 0) >= 2 * THRESHOLD_MS

            await poll(b_penalised)
            penalised = trio.current_time()
            # a penalty needs a slow first stream and the next recompute
            assert penalised - slow_from <= (SLOW_TTFT_MS / 1000 + 0.2) + INTERVAL + MARGIN
            await trio.sleep(4.0)  # the observation window (time-based behaviour: probes)
            stop.set()
    ended = trio.current_time()
    phase2 = clients.between(slow_from)
    assert all(r.stream for r in phase2)
    assert [r for r in phase2 if not r.good] == []
    before = clients.between(slow_from, penalised)
    after = [r for r in clients.between(penalised + 0.05, ended) if r.done <= ended]
    # before the average was known B was chosen by score (load) like any backend ...
    assert any(r.backend == "B" and r.reason == "best_score" for r in before)
    # ... after, only probes reach B: about one per probe interval (each stream ~0.6 s)
    to_b = [r for r in after if r.backend == "B"]
    assert {r.reason for r in to_b} == {"probe"}
    window = ended - penalised
    assert window / (PROBE + 1.0) - 1 <= len(to_b) <= window / PROBE + 1
    share_a = sum(r.backend == "A" for r in after) / len(after)
    assert share_a >= 0.9
    share_b_before = sum(r.backend == "B" for r in before) / len(before)
    assert share_b_before > 1 - share_a

    # --- what /v1/stats and /metrics show --------------------------------------------------
    document = await stats(client, url)
    assert document["requests"]["errors"] == 0
    assert document["requests"]["client_errors"] == 0
    assert document["requests"]["success"] == len(clients.results)
    quality_a, quality_b = await agent(client, url, "A"), await agent(client, url, "B")
    assert quality_a is not None
    assert quality_b is not None
    assert quality_a["state"] == "healthy"
    assert quality_a["avg_ttft_ms"] < THRESHOLD_MS
    assert quality_b["state"] == "healthy"  # the penalty reorders, it never excludes
    assert quality_b["avg_ttft_ms"] >= SLOW_TTFT_MS
    samples = await scrape(client, url)
    for name in ("A", "B"):
        labels = {"backend": name, "model": MODEL}
        assert value(samples, "nexus_agent_state", state="healthy", **labels) == 1.0
    a_labels = {"backend": "A", "model": MODEL}
    b_labels = {"backend": "B", "model": MODEL}
    assert value(samples, "nexus_upstream_attempts_total", outcome="failure", **a_labels) >= 3
    assert value(samples, "nexus_retries_total", backend="A") >= 3
    assert (
        value(
            samples,
            "nexus_reconciler_exclusions_total",
            reconciler="quality",
            reason="consecutive_failures",
        )
        >= 1
    )
    b_streams = sum(r.backend == "B" for r in phase2)
    assert value(samples, "nexus_agent_ttft_seconds_count", **b_labels) == b_streams
    b_ttft = value(samples, "nexus_agent_ttft_seconds_sum", **b_labels) / b_streams
    assert b_ttft >= SLOW_TTFT_MS / 1000
    codes = {dict(labels)["code"] for name, labels in samples if name == "nexus_requests_total"}
    assert codes == {"2xx"}
