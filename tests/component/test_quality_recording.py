"""Which outcomes count against a backend (docs/quality.md#outcomes, docs/proxying.md#retries):
client errors, upstream failures, the request deadline, a missing model, and clients that go
away (docs/proxying.md#streaming).

Every test drives the in-process app with fake upstreams (``httpx.MockTransport``) and reads
what was recorded: the :class:`~nexus_trio.quality.QualityStore` snapshot after a recompute
(exactly what the periodic loop runs), ``/v1/stats`` and ``/metrics``. Where time matters it is
virtual (``autojump_clock``) and asserted exactly.
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
from tests.component.fake_upstream import (
    ChunkStream,
    chunk,
    ok,
    raw_response,
    script,
    sse,
    status,
    stream_response,
    truncated_stream,
)
from tests.component.in_process import Gateway, MakeGateway
from tests.component.readings import (
    agent_entry,
    attempts,
    gauge,
    hosts,
    metric_samples,
    quality,
    sample,
    stats,
    tick,
)

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
        # returned as-is (a refusal of the gateway's own credentials as a neutral 502), not
        # retried, still on the preferred backend
        assert response.status_code == (502 if code in (401, 403) else code)
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
    # the request's own count follows what the client got: a 502 for a refused credential
    refused = code in (401, 403)
    assert document["requests"]["client_errors"] == (0 if refused else 5)
    assert document["requests"]["errors"] == (5 if refused else 0)


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
            key="default",
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
    assert gateway.wiring.state.totals.cancelled == 9
    # still the preferred backend
    gateway.upstream.handlers["a.test"] = script(ok)
    response = await gateway.post(PATH, CHAT)
    assert response.headers["x-nexus-backend"] == "a"
    assert response.headers["x-nexus-route-reason"] == "best_score"
