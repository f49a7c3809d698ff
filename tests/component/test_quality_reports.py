"""Quality in ``/v1/stats`` and ``/metrics`` agree with the store (docs/quality.md#store,
docs/api.md#stats, docs/metrics.md#metrics).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import msgspec
import pytest
import trio
import trio.testing

from nexus_trio.quality import AgentState
from tests.component.client import CHAT, PATH, STREAM_CHAT
from tests.component.configs import config_toml, fake_backend
from tests.component.fake_upstream import (
    ROLE_ONLY,
    ChunkStream,
    Handler,
    chunk,
    ok,
    sse,
    status,
    stream_response,
)
from tests.component.in_process import MakeGateway
from tests.component.readings import agent_entry, backend_entry, gauge, metric_samples, stats, tick

# --- /v1/stats and /metrics agree (docs/api.md#stats, docs/metrics.md#metrics)
# ---------------------------------------------


async def test_stats_and_metrics_agree(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10, models=["m", "n"]),
            fake_backend("b", 20, models=["m"]),
            fake_backend("c", 30, models=["n"]),
            quality="min_requests = 4\nconsecutive_failures = 100\nerror_rate_threshold = 0.5\n",
            head="[routing]\nmax_retries = 0\n",
        )
    )

    def by_model(**answers: list[Callable[[], httpx.Response]]) -> Handler:
        async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
            queue = answers[msgspec.json.decode(body)["model"]]
            return (queue.pop(0) if len(queue) > 1 else queue[0])()

        return handler

    def stream_after(seconds: float) -> Callable[[], httpx.Response]:
        return lambda: stream_response(
            ChunkStream([*sse(ROLE_ONLY), seconds, *sse(chunk("x"), chunk(None, "stop"))])
        )

    # a/m: 3 successes (2 streaming, TTFT 0.2 s and 0.6 s), 1 failure, 1 client error
    # a/n: 1 success, 3 failures -> excluded by error rate (4 >= min_requests, 0.75 > 0.5)
    gateway.upstream.handlers["a.test"] = by_model(
        m=[ok, stream_after(0.2), stream_after(0.6), status(500), status(400)],
        n=[ok, status(503), status(503), status(503)],
    )
    for body in (CHAT, STREAM_CHAT, STREAM_CHAT, CHAT, CHAT):
        await (await gateway.post(PATH, body)).get_data()
    n_chat = {**CHAT, "model": "n"}
    for _ in range(4):
        await gateway.post(PATH, n_chat)
    # b/m never gets a request (a/m is preferred and nothing is retried): no data, null
    gateway.upstream.handlers["b.test"] = by_model(m=[ok])
    gateway.upstream.handlers["c.test"] = by_model(n=[ok])
    tick(gateway)
    # a/n is excluded now, so n goes to c
    response = await gateway.post(PATH, n_chat)
    assert response.headers["x-nexus-backend"] == "c"
    await trio.sleep(1)
    tick(gateway)

    document = await stats(gateway)
    samples = await metric_samples(gateway)
    snapshot = gateway.wiring.quality.snapshot
    assert set(snapshot) == {("a", "m"), ("a", "n"), ("c", "n")}
    for (name, model), entry in snapshot.items():
        rendered = agent_entry(document, name, model)
        assert rendered is not None
        labels = {"backend": name, "model": model}
        assert rendered["error_rate_1h"] == pytest.approx(
            gauge(samples, "nexus_agent_error_rate", **labels), abs=5e-5
        )
        assert rendered["success_rate_24h"] == pytest.approx(
            gauge(samples, "nexus_agent_success_rate_24h", **labels), abs=5e-5
        )
        assert rendered["request_count_1h"] == gauge(
            samples, "nexus_agent_request_count_1h", **labels
        )
        states = {
            state.value: gauge(samples, "nexus_agent_state", state=state.value, **labels)
            for state in AgentState
        }
        assert states == {
            s.value: (1.0 if s.value == rendered["state"] else 0.0) for s in AgentState
        }
        assert rendered["state"] == entry.state.value
    assert agent_entry(document, "b") is None

    a_m, a_n = agent_entry(document, "a", "m"), agent_entry(document, "a", "n")
    assert a_m is not None
    assert a_n is not None
    assert (a_m["error_rate_1h"], a_m["request_count_1h"], a_m["state"]) == (0.25, 5, "healthy")
    assert a_m["avg_ttft_ms"] == pytest.approx(400.0)
    assert (a_n["error_rate_1h"], a_n["request_count_1h"], a_n["state"]) == (0.75, 4, "excluded")
    # the backend aggregates its agents: counts summed, rates from the sums, the worst state
    a = backend_entry(document, "a")["quality"]
    assert a["request_count_1h"] == 9
    assert a["error_rate_1h"] == pytest.approx(4 / 8, abs=5e-5)
    assert a["success_rate_24h"] == pytest.approx(4 / 8, abs=5e-5)
    assert a["avg_ttft_ms"] == pytest.approx(400.0)
    assert a["state"] == "excluded"
    assert a["consecutive_failures"] == 3
    assert a["last_failure_time"] == max(a_m["last_failure_time"], a_n["last_failure_time"])
    assert backend_entry(document, "b")["quality"] is None
    assert backend_entry(document, "c")["quality"]["request_count_1h"] == 1
