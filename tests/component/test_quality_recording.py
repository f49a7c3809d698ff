"""Quality tracking through the real request path (docs/quality.md#outcomes, docs/quality.md#store,
docs/quality.md#exclusion, docs/quality.md#ttft-penalty, docs/api.md#stats,
docs/metrics.md#metrics).

Every test drives the in-process app with fake upstreams (``httpx.MockTransport``) and reads
what was recorded three ways: the :class:`~nexus_trio.quality.QualityStore` snapshot after a
recompute (``services.quality_loop().tick()``, exactly what the periodic loop runs), ``/v1/stats``
and ``/metrics``. Where time matters it is virtual (``autojump_clock``) and asserted exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import msgspec
import pytest
import trio
import trio.testing

from nexus_trio.quality import AgentState
from tests.component.client import CHAT, PATH, STREAM_CHAT, ASGICall
from tests.component.configs import config_toml, fake_backend
from tests.component.conftest import Gateway
from tests.component.fake_upstream import (
    DONE,
    ROLE_ONLY,
    ChunkStream,
    Handler,
    chunk,
    completion,
    ok,
    raw_response,
    script,
    sse,
    status,
    stream_response,
    truncated_stream,
)
from tests.component.readings import (
    agent_entry,
    attempts,
    backend_entry,
    gauge,
    hosts,
    metric_samples,
    quality,
    sample,
    stats,
    tick,
)

MakeGateway = Callable[..., Gateway]


# --- TTFT: the first generated content, not the first event (docs/quality.md#outcomes)
# ------------------------

NULL_CONTENT = {"choices": [{"index": 0, "delta": {"content": None}}]}
EMPTY_TOOL_CALLS = {"choices": [{"index": 0, "delta": {"tool_calls": []}}]}
TOOL_CALL = {
    "choices": [
        {
            "index": 0,
            "delta": {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            },
        }
    ]
}
REASONING = {"choices": [{"index": 0, "delta": {"reasoning_content": "Let me think"}}]}
EMPTY_TEXT = {"choices": [{"index": 0, "text": "", "finish_reason": None}]}
TEXT = {"choices": [{"index": 0, "text": "Once", "finish_reason": None}]}
TEXT_END = {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}

#: (route, events before the 2 s pause, the first event with content)
TTFT_CASES = {
    "delta.content": (PATH, [ROLE_ONLY, NULL_CONTENT, EMPTY_TOOL_CALLS], chunk("Hello")),
    "delta.tool_calls": (PATH, [ROLE_ONLY], TOOL_CALL),
    "delta.reasoning_content": (PATH, [ROLE_ONLY], REASONING),
    "choices.text": ("/v1/completions", [EMPTY_TEXT], TEXT),
}


@pytest.mark.parametrize("kind", list(TTFT_CASES))
async def test_streaming_ttft_is_first_content_token(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    """A first event without content commits the stream at once, but TTFT is measured to the
    first event with generated content, 2 s (virtual) later: ~2000 ms in the store, in
    ``/v1/stats`` and in ``nexus_agent_ttft_seconds``."""
    path, empty, content = TTFT_CASES[kind]
    gateway = make_gateway(config_toml(fake_backend("a")))
    end = TEXT_END if path == "/v1/completions" else chunk(None, "stop")
    events = [b": ping\n\n", *sse(*empty), 2.0, *sse(content, end), DONE]
    gateway.upstream.handlers["a.test"] = script(lambda: stream_response(ChunkStream(events)))
    body = {"model": "m", "stream": True}
    body |= {"prompt": "hi"} if path == "/v1/completions" else {"messages": CHAT["messages"]}
    call = ASGICall(gateway.app, path, msgspec.json.encode(body))
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(call.run)
        with trio.fail_after(10):
            first = await call.next_body()
            # committed on the first event, before any content
            assert trio.current_time() - start == 0.0
            assert first.startswith(b"data: ")
            await call.finished.wait()
    assert trio.current_time() - start == 2.0

    tick(gateway)
    metrics = quality(gateway)
    assert metrics.avg_ttft_ms == pytest.approx(2000.0)
    assert metrics.ttft_count_1h == 1
    # p90 interpolated inside the (1000, 2500] ms bucket
    assert metrics.p90_ttft_ms == pytest.approx(1000.0 + 1500.0 * 0.9)
    assert metrics.successes_1h == 1

    document = await stats(gateway)
    assert agent_entry(document, "a")["avg_ttft_ms"] == 2000.0  # type: ignore[index]
    assert backend_entry(document, "a")["quality"]["avg_ttft_ms"] == 2000.0

    labels = {"backend": "a", "model": "m"}
    assert sample(gateway, "nexus_agent_ttft_seconds_count", **labels) == 1
    assert sample(gateway, "nexus_agent_ttft_seconds_sum", **labels) == pytest.approx(2.0)
    assert sample(gateway, "nexus_agent_ttft_seconds_bucket", le="1.0", **labels) == 0
    assert sample(gateway, "nexus_agent_ttft_seconds_bucket", le="2.5", **labels) == 1


async def test_stream_without_content_records_no_ttft(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a")))
    events = [*sse(ROLE_ONLY), 1.0, *sse(chunk(None, "stop")), DONE]
    gateway.upstream.handlers["a.test"] = script(lambda: stream_response(ChunkStream(events)))
    response = await gateway.post(PATH, STREAM_CHAT)
    assert response.status_code == 200
    await response.get_data()
    tick(gateway)
    metrics = quality(gateway)
    assert metrics.successes_1h == 1
    assert metrics.avg_ttft_ms is None
    assert metrics.ttft_count_1h == 0
    assert sample(gateway, "nexus_agent_ttft_seconds_count", backend="a", model="m") is None


async def test_non_streaming_attempts_record_latency_not_ttft(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a")))
    body = msgspec.json.encode({"choices": [{"message": {"content": "hi"}}]})

    def slow() -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "application/json"}, stream=ChunkStream([1.5, body])
        )

    gateway.upstream.handlers["a.test"] = script(slow)
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 200
    tick(gateway)
    metrics = quality(gateway)
    assert metrics.successes_1h == 1
    assert metrics.request_count_1h == 1
    assert metrics.avg_ttft_ms is None
    assert metrics.p90_ttft_ms is None
    assert metrics.ttft_count_1h == 0
    assert sample(gateway, "nexus_agent_ttft_seconds_count", backend="a", model="m") is None
    document = await stats(gateway)
    entry = backend_entry(document, "a")
    assert entry["avg_latency_ms"] == 1500.0
    assert entry["quality"]["avg_ttft_ms"] is None
    assert agent_entry(document, "a")["request_count_1h"] == 1  # type: ignore[index]
    assert gateway.services.registry.get("a").counters.ttft_ewma_ms is None  # type: ignore[union-attr]


# --- outcomes: what counts against a backend (docs/quality.md#outcomes, docs/proxying.md#retries)
# ---------------------------------

#: Thresholds so low that a single counted failure would exclude the agent.
STRICT = "min_requests = 1\nconsecutive_failures = 2\nerror_rate_threshold = 0.5\n"


@pytest.mark.parametrize("code", [400, 401, 403, 409, 413, 422])
async def test_client_errors_not_counted(make_gateway: MakeGateway, code: int) -> None:
    gateway = make_gateway(
        config_toml(fake_backend("a", 10), fake_backend("b", 20), quality=STRICT)
    )
    gateway.upstream.handlers["a.test"] = script(status(code, b'{"error": {"message": "bad"}}'))
    gateway.upstream.handlers["b.test"] = script(ok)
    for _ in range(5):
        response = await gateway.post(PATH, CHAT)
        # returned as-is, not retried, still on the preferred backend
        assert response.status_code == code
        assert response.headers["x-nexus-backend"] == "a"
        assert response.headers["x-nexus-attempts"] == "1"
    assert hosts(gateway) == ["a"] * 5
    assert attempts(gateway, "client_error") == 5
    assert attempts(gateway, "failure") == 0
    tick(gateway)
    metrics = quality(gateway)
    assert metrics.client_errors_1h == 5
    assert metrics.failures_1h == 0
    assert metrics.error_rate_1h == 0.0
    assert metrics.consecutive_failures == 0
    assert metrics.state is AgentState.HEALTHY
    document = await stats(gateway)
    assert agent_entry(document, "a") == {
        "error_rate_1h": 0.0,
        "success_rate_24h": 1.0,
        "avg_ttft_ms": None,
        "p90_ttft_ms": None,
        "request_count_1h": 5,
        "last_failure_time": None,
        "consecutive_failures": 0,
        "state": "healthy",
    }
    assert document["requests"]["client_errors"] == 5
    assert document["requests"]["errors"] == 0


def _reset_mid_stream() -> httpx.Response:
    return stream_response(ChunkStream([*sse(chunk("a")), httpx.ReadError("reset by peer")]))


def _reset_mid_body() -> httpx.Response:
    stream = ChunkStream([b'{"choices": [', httpx.ReadError("connection reset by peer")])
    return httpx.Response(200, headers={"content-type": "application/json"}, stream=stream)


def _hang() -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "application/json"}, stream=ChunkStream([trio.Event()])
    )


#: (streaming?, answer) for every way an attempt fails (docs/quality.md#outcomes "failure").
FAILURES: dict[str, tuple[bool, Callable[[], httpx.Response] | Exception]] = {
    "408": (False, status(408)),
    "429": (False, status(429)),
    "500": (False, status(500)),
    "502-html": (False, lambda: raw_response(502, b"<html>bad gateway</html>")),
    "503": (False, status(503)),
    "504": (False, status(504)),
    "invalid-json": (False, lambda: raw_response(200, b"<html>not json</html>")),
    "reset-before-response": (False, httpx.ReadError("connection reset by peer")),
    "reset-mid-body": (False, _reset_mid_body),
    "connect-error": (False, httpx.ConnectError("[Errno 111] Connection refused")),
    "attempt-timeout": (False, _hang),
    "stream-500": (True, status(500)),
    "stream-not-sse": (True, lambda: raw_response(200, b'{"not": "a stream"}')),
    "stream-truncated": (True, truncated_stream),
    "stream-reset-mid": (True, _reset_mid_stream),
}


@pytest.mark.parametrize("kind", list(FAILURES))
async def test_upstream_failures_are_counted(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    """408, 429, 5xx, invalid JSON, resets, timeouts and broken streams are failures: they
    count in the error rate and exclude a backend that keeps failing."""
    streaming, answer = FAILURES[kind]
    gateway = make_gateway(
        config_toml(
            fake_backend("a"),
            quality="min_requests = 3\nconsecutive_failures = 100\nerror_rate_threshold = 0.5\n",
            head="[server]\nattempt_timeout_seconds = 5\n[routing]\nmax_retries = 0\n",
        )
    )
    gateway.upstream.handlers["a.test"] = script(answer)
    for _ in range(3):
        response = await gateway.post(PATH, STREAM_CHAT if streaming else CHAT)
        data = await response.get_data()
        assert response.status_code >= 400 or b"stream_truncated" in data
    assert attempts(gateway, "failure") == 3
    assert attempts(gateway, "cancelled") == 0
    assert attempts(gateway, "client_error") == 0
    tick(gateway)
    metrics = quality(gateway)
    assert metrics.failures_1h == 3
    assert metrics.error_rate_1h == 1.0
    assert metrics.success_rate_24h == 0.0
    assert metrics.request_count_1h == 3
    assert metrics.consecutive_failures == 3
    assert metrics.last_failure_time is not None
    # 3 failures of 3 with min_requests 3: excluded at the recompute
    assert metrics.state is AgentState.EXCLUDED
    document = await stats(gateway)
    assert agent_entry(document, "a")["state"] == "excluded"  # type: ignore[index]


async def test_attempt_cut_by_the_request_deadline_is_a_failure(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a"),
            head="[server]\nrequest_timeout_seconds = 3\nattempt_timeout_seconds = 120\n",
        )
    )
    gateway.upstream.handlers["a.test"] = script(_hang)
    start = trio.current_time()
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 504
    assert trio.current_time() - start == 3.0
    # the backend did not answer in time: a timeout (docs/quality.md#outcomes), the client did not
    # leave
    assert attempts(gateway, "failure") == 1
    assert attempts(gateway, "cancelled") == 0


async def test_model_missing_404_is_a_client_error_and_retried_elsewhere(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(
        config_toml(fake_backend("a", 10), fake_backend("b", 20), quality=STRICT)
    )
    gateway.upstream.handlers["a.test"] = script(status(404))
    gateway.upstream.handlers["b.test"] = script(ok)
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "b"
    assert attempts(gateway, "client_error") == 1
    tick(gateway)
    assert quality(gateway).failures_1h == 0
    assert quality(gateway).state is AgentState.HEALTHY


# --- cancelled: the client went away (docs/proxying.md#streaming, docs/quality.md#outcomes)
# ----------------------------------------


async def _vanish_mid_stream(gateway: Gateway) -> ChunkStream:
    """A streaming request whose client disappears after the first event."""
    upstream = ChunkStream([*sse(chunk("a")), trio.Event()])
    gateway.upstream.handlers["a.test"] = script(lambda: stream_response(upstream))
    call = ASGICall(gateway.app, PATH, msgspec.json.encode(STREAM_CHAT))
    async with trio.open_nursery() as nursery:
        await nursery.start(call.run)
        with trio.fail_after(5):
            assert (await call.next_body()).startswith(b"data: ")
        call.gone.set()
        with trio.fail_after(5):
            await call.finished.wait()
            await upstream.closed.wait()
    return upstream


async def test_disconnect_records_cancelled(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(config_toml(fake_backend("a"), quality=STRICT))
    await _vanish_mid_stream(gateway)
    assert attempts(gateway, "cancelled") == 1
    assert attempts(gateway, "failure") == 0
    assert (
        sample(
            gateway,
            "nexus_requests_total",
            model="m",
            backend="a",
            code="cancelled",
            stream="true",
        )
        == 1
    )
    assert not [key for key in await metric_samples(gateway) if "truncated" in key[0]]
    tick(gateway)
    metrics = quality(gateway)
    assert metrics.cancelled_1h == 1
    assert metrics.request_count_1h == 0
    assert metrics.error_rate_1h == 0.0
    assert metrics.success_rate_24h == 1.0
    assert metrics.state is AgentState.HEALTHY
    document = await stats(gateway)
    assert document["requests"]["cancelled"] == 1
    assert document["requests"]["errors"] == 0
    assert agent_entry(document, "a")["error_rate_1h"] == 0.0  # type: ignore[index]
    samples = await metric_samples(gateway)
    assert gauge(samples, "nexus_agent_error_rate", backend="a", model="m") == 0.0
    assert gauge(samples, "nexus_agent_request_count_1h", backend="a", model="m") == 0.0


async def test_cancelled_not_counted(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    """Clients leaving at every stage — before the answer, before the first event, mid-stream —
    neither raise the error rate nor eject the backend, however many there are."""
    gateway = make_gateway(
        config_toml(fake_backend("a", 10), fake_backend("b", 20), quality=STRICT)
    )
    for _ in range(3):
        await _vanish_mid_stream(gateway)

    async def leave_while_waiting(body: object, answer: Callable[[], httpx.Response]) -> None:
        reached = trio.Event()

        async def handler(request: httpx.Request, data: bytes) -> httpx.Response:
            reached.set()
            return answer()

        gateway.upstream.handlers["a.test"] = handler
        call = ASGICall(gateway.app, PATH, msgspec.json.encode(body))
        async with trio.open_nursery() as nursery:
            await nursery.start(call.run)
            with trio.fail_after(5):
                await reached.wait()
            await trio.testing.wait_all_tasks_blocked()
            call.gone.set()
            with trio.fail_after(5):
                await call.finished.wait()

    for _ in range(3):
        await leave_while_waiting(CHAT, _hang)
        await leave_while_waiting(STREAM_CHAT, lambda: stream_response(ChunkStream([trio.Event()])))

    assert attempts(gateway, "cancelled") == 9
    assert attempts(gateway, "failure") == 0
    tick(gateway)
    metrics = quality(gateway)
    assert metrics.cancelled_1h == 9
    assert metrics.failures_1h == 0
    assert metrics.error_rate_1h == 0.0
    assert metrics.consecutive_failures == 0
    assert metrics.state is AgentState.HEALTHY
    assert gateway.services.totals.cancelled == 9
    # still the preferred backend
    gateway.upstream.handlers["a.test"] = script(ok)
    response = await gateway.post(PATH, CHAT)
    assert response.headers["x-nexus-backend"] == "a"
    assert response.headers["x-nexus-route-reason"] == "best_score"


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
    snapshot = gateway.services.quality.snapshot
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


# --- the quality reconciler in the real request path (docs/quality.md#exclusion)
# ------------------------------

FAST_EJECT = "consecutive_failures = 3\nprobe_interval_seconds = 10\nmin_requests = 100\n"


async def test_consecutive_failures_exclude_at_once_and_a_probe_readmits(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(fake_backend("a", 10), fake_backend("b", 20), quality=FAST_EJECT)
    )
    gateway.upstream.handlers["a.test"] = script(status(500))
    gateway.upstream.handlers["b.test"] = script(ok)
    for _ in range(3):
        response = await gateway.post(PATH, CHAT)
        assert response.status_code == 200
        assert response.headers["x-nexus-backend"] == "b"
        assert response.headers["x-nexus-route-reason"] == "retry"
    assert hosts(gateway) == ["a", "b"] * 3
    excluded_at = trio.current_time()

    # excluded at once: no recompute needed, the next request goes elsewhere with no error
    assert quality(gateway).state is AgentState.EXCLUDED
    document = await stats(gateway)
    assert agent_entry(document, "a")["state"] == "excluded"  # type: ignore[index]
    assert backend_entry(document, "a")["quality"]["state"] == "excluded"
    samples = await metric_samples(gateway)
    assert gauge(samples, "nexus_agent_state", backend="a", model="m", state="excluded") == 1.0
    gateway.upstream.requests.clear()
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "b"
    assert response.headers["x-nexus-attempts"] == "1"
    assert response.headers["x-nexus-route-reason"] == "only_candidate"
    assert hosts(gateway) == ["b"]
    assert (
        sample(
            gateway,
            "nexus_reconciler_exclusions_total",
            reconciler="quality",
            reason="consecutive_failures",
        )
        == 1
    )

    # a heals; nothing reaches it before its probe time
    gateway.upstream.handlers["a.test"] = script(ok)
    await trio.sleep(9.5)
    tick(gateway)
    assert quality(gateway).state is AgentState.EXCLUDED
    assert (await gateway.post(PATH, CHAT)).headers["x-nexus-backend"] == "b"

    # probe_interval_seconds after the exclusion: probing, and one request is routed to it
    await trio.sleep_until(excluded_at + 10)
    tick(gateway)
    assert quality(gateway).state is AgentState.PROBING
    assert agent_entry(await stats(gateway), "a")["state"] == "probing"  # type: ignore[index]
    gateway.upstream.requests.clear()
    probe = await gateway.post(PATH, CHAT)
    assert probe.status_code == 200
    assert probe.headers["x-nexus-backend"] == "a"
    assert probe.headers["x-nexus-route-reason"] == "probe"
    assert hosts(gateway) == ["a"]

    # success readmits it at once (no recompute), failures of the hour forgotten
    metrics = quality(gateway)
    assert metrics.state is AgentState.HEALTHY
    assert metrics.consecutive_failures == 0
    assert agent_entry(await stats(gateway), "a")["state"] == "healthy"  # type: ignore[index]
    tick(gateway)
    assert quality(gateway).state is AgentState.HEALTHY
    assert quality(gateway).error_rate_1h == 0.0
    after = await gateway.post(PATH, CHAT)
    assert after.headers["x-nexus-backend"] == "a"
    assert after.headers["x-nexus-route-reason"] == "best_score"


async def test_failed_probe_backs_off_and_the_request_is_retried(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(fake_backend("a", 10), fake_backend("b", 20), quality=FAST_EJECT)
    )
    gateway.upstream.handlers["a.test"] = script(status(500))
    gateway.upstream.handlers["b.test"] = script(ok)
    for _ in range(3):
        await gateway.post(PATH, CHAT)
    excluded_at = trio.current_time()
    await trio.sleep_until(excluded_at + 10)
    gateway.upstream.requests.clear()
    probe = await gateway.post(PATH, CHAT)
    # the probe failed; the request was retried on b: the client sees no error
    assert probe.status_code == 200
    assert probe.headers["x-nexus-backend"] == "b"
    assert probe.headers["x-nexus-attempts"] == "2"
    assert hosts(gateway) == ["a", "b"]
    assert quality(gateway).state is AgentState.EXCLUDED
    probe_failed_at = trio.current_time()
    # the next probe only after twice the interval
    await trio.sleep_until(probe_failed_at + 19.5)
    tick(gateway)
    assert quality(gateway).state is AgentState.EXCLUDED
    gateway.upstream.requests.clear()
    await gateway.post(PATH, CHAT)
    assert hosts(gateway) == ["b"]
    await trio.sleep_until(probe_failed_at + 20)
    gateway.upstream.handlers["a.test"] = script(ok)
    gateway.upstream.requests.clear()
    probe = await gateway.post(PATH, CHAT)
    assert probe.headers["x-nexus-route-reason"] == "probe"
    assert probe.headers["x-nexus-backend"] == "a"
    assert quality(gateway).state is AgentState.HEALTHY


async def test_error_rate_excludes_only_with_the_minimum_sample(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10),
            fake_backend("b", 20),
            quality="min_requests = 4\nconsecutive_failures = 100\nerror_rate_threshold = 0.5\n",
            head="[routing]\nmax_retries = 0\n",
        )
    )
    # alternate failure/success: 50% is the boundary and passes
    gateway.upstream.handlers["a.test"] = script(status(500), ok, status(500), ok, status(500))
    gateway.upstream.handlers["b.test"] = script(ok)
    for _ in range(3):
        await gateway.post(PATH, CHAT)
    tick(gateway)
    # 2 failures of 3 (67%) but below min_requests: neutral
    assert quality(gateway).error_rate_1h == pytest.approx(2 / 3)
    assert quality(gateway).state is AgentState.HEALTHY
    await gateway.post(PATH, CHAT)
    tick(gateway)
    # 2 of 4: at the threshold, not above it
    assert quality(gateway).error_rate_1h == 0.5
    assert quality(gateway).state is AgentState.HEALTHY
    response = await gateway.post(PATH, CHAT)
    assert response.headers["x-nexus-backend"] == "a"
    assert response.status_code == 500
    # 3 of 5 (60%) > 50% with the minimum sample: excluded, but only at the recompute
    assert quality(gateway).state is AgentState.HEALTHY
    tick(gateway)
    assert quality(gateway).state is AgentState.EXCLUDED
    response = await gateway.post(PATH, CHAT)
    assert response.headers["x-nexus-backend"] == "b"
    assert (
        sample(
            gateway,
            "nexus_reconciler_exclusions_total",
            reconciler="quality",
            reason="high_error_rate",
        )
        == 1
    )


async def test_quality_panic_when_every_candidate_is_excluded(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10),
            fake_backend("b", 20),
            quality="consecutive_failures = 2\nprobe_interval_seconds = 60\n",
            head="[routing]\nmax_retries = 1\n",
        )
    )
    gateway.upstream.handlers["a.test"] = script(status(500))
    gateway.upstream.handlers["b.test"] = script(status(500))
    for _ in range(2):
        response = await gateway.post(PATH, CHAT)
        assert response.status_code == 500
    assert quality(gateway, "a").state is AgentState.EXCLUDED
    assert quality(gateway, "b").state is AgentState.EXCLUDED
    assert sample(gateway, "nexus_quality_panic_total", model="m") is None

    # both heal; quality would remove every candidate, so it removes none
    gateway.upstream.handlers["a.test"] = script(ok)
    gateway.upstream.handlers["b.test"] = script(ok)
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-route-reason"] == "quality_panic"
    assert response.headers["x-nexus-backend"] == "a"
    assert sample(gateway, "nexus_quality_panic_total", model="m") == 1
    # the only candidate, excluded: still served, still panic
    single = make_gateway(config_toml(fake_backend("a"), quality="consecutive_failures = 1\n"))
    single.upstream.handlers["a.test"] = script(status(500), ok)
    assert (await single.post(PATH, CHAT)).status_code == 500
    assert quality(single).state is AgentState.EXCLUDED
    response = await single.post(PATH, CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-route-reason"] == "quality_panic"
    assert sample(single, "nexus_quality_panic_total", model="m") == 1


def streams_after(ttft: float) -> Handler:
    """Streams whose first content comes ``ttft`` seconds after the role-only first event;
    non-streaming requests get a completion at once."""

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        if not msgspec.json.decode(body).get("stream"):
            return completion()
        events = [*sse(ROLE_ONLY), ttft, *sse(chunk("x"), chunk(None, "stop")), DONE]
        return stream_response(ChunkStream(events))

    return handler


async def test_ttft_penalty_moves_streaming_and_probes_the_slow_backend(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    """docs/quality.md#ttft-penalty: a preferred backend with a slow average TTFT loses its
    streaming traffic, but gets one streaming request per probe interval (reason ``probe``) to be
    measured again."""
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10),
            fake_backend("b", 20),
            quality="ttft_penalty_threshold_ms = 150\nprobe_interval_seconds = 10\n",
            head="[routing.weights]\nlatency = 0\n",
        )
    )
    gateway.upstream.handlers["a.test"] = streams_after(0.4)
    gateway.upstream.handlers["b.test"] = streams_after(0.02)

    async def send() -> tuple[str, str]:
        response = await gateway.post(PATH, STREAM_CHAT)
        await response.get_data()
        return response.headers["x-nexus-backend"], response.headers["x-nexus-route-reason"]

    assert await send() == ("a", "best_score")  # no TTFT data yet: priority decides
    tick(gateway)
    assert quality(gateway).avg_ttft_ms == pytest.approx(400.0)
    # penalised: 400 ms >= 2 x 150 ms zeroes the score; a's last stream was just now
    assert await send() == ("b", "best_score")
    await trio.sleep(5)
    assert await send() == ("b", "best_score")
    await trio.sleep(5)
    # probe_interval_seconds without a streaming attempt: the next stream measures a again
    assert await send() == ("a", "probe")
    assert await send() == ("b", "best_score")
    # non-streaming requests are penalised too (docs/quality.md#ttft-penalty) but never probed
    response = await gateway.post(PATH, CHAT)
    assert response.headers["x-nexus-backend"] == "b"
    # a got fast again: its next probe brings the average down and the traffic back
    gateway.upstream.handlers["a.test"] = streams_after(0.01)
    await trio.sleep(10)
    for _ in range(10):
        assert (await send())[0] == "a"
        tick(gateway)
        if quality(gateway).avg_ttft_ms <= 150:  # type: ignore[operator]
            break
        await trio.sleep(10)
    assert await send() == ("a", "best_score")
