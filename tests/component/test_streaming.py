"""Streaming: commit on the first event, byte-exact relay, honest endings
(docs/proxying.md#streaming)."""

from __future__ import annotations

import httpx
import msgspec
import trio
import trio.testing

from nexus_trio.upstream.relay import truncation_event
from tests.component.client import CHAT, STREAM_CHAT, ASGICall
from tests.component.fake_upstream import (
    DONE,
    ChunkStream,
    chunk,
    raw_response,
    sse,
    stream_response,
)
from tests.component.in_process import Gateway
from tests.component.readings import attempts


def serve(gateway: Gateway, host: str, *streams: ChunkStream) -> None:
    pending = list(streams)

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return stream_response(pending.pop(0))

    gateway.upstream.handlers[host] = handler


async def test_good_stream_relayed_byte_exact(gateway: Gateway) -> None:
    events = [b": ping\n\n", *sse(chunk(""), chunk("Hel")), b'data: {"choices"', b": []}\r\n\r\n"]
    events += [*sse(chunk("lo", "stop")), DONE]
    serve(gateway, "a.test", ChunkStream(events))
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-nexus-backend"] == "a"
    # the ping before the first event is not relayed; everything after it is, byte for byte
    assert await response.get_data() == b"".join(events[1:])
    assert attempts(gateway, "success") == 1
    assert gateway.wiring.state.in_flight.count == 0


async def test_finish_reason_then_close_gets_done(gateway: Gateway) -> None:
    events = sse(chunk("a"), chunk(None, "stop"))
    serve(gateway, "a.test", ChunkStream(events))
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    assert await response.get_data() == b"".join(events) + DONE
    assert attempts(gateway, "success") == 1


async def test_early_close_is_truncated(gateway: Gateway) -> None:
    events = sse(chunk("a"), chunk("b"))
    serve(gateway, "a.test", ChunkStream(events))
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    body = await response.get_data()
    assert body == b"".join(events) + truncation_event("upstream_closed")
    last_event = body.split(b"\n\n")[-3]
    assert msgspec.json.decode(last_event[6:])["error"]["code"] == "stream_truncated"
    assert attempts(gateway, "failure") == 1
    assert gateway.wiring.state.totals.errors == 1


async def test_partial_event_after_finish_is_truncated(gateway: Gateway) -> None:
    events = [*sse(chunk("a", "stop")), b'data: {"half']
    serve(gateway, "a.test", ChunkStream(events))
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    assert (await response.get_data()).endswith(truncation_event("upstream_closed"))


async def test_reset_mid_stream_is_truncated(gateway: Gateway) -> None:
    events = [*sse(chunk("a")), httpx.ReadError("connection reset by peer")]
    serve(gateway, "a.test", ChunkStream(events))
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    body = await response.get_data()
    assert body.endswith(truncation_event("upstream_reset"))
    assert b"reset by peer" not in body


async def test_idle_upstream_is_truncated(
    make_gateway,
    autojump_clock: trio.testing.MockClock,  # type: ignore[no-untyped-def]
) -> None:
    gateway: Gateway = make_gateway(
        "[server]\nstream_idle_timeout_seconds = 7\n[health_check]\nenabled = false\n"
        '[[backends]]\nname = "a"\nurl = "http://a.test"\ntype = "generic"\nmodels = ["m"]\n'
    )
    stream = ChunkStream([*sse(chunk("a")), trio.Event()])
    serve(gateway, "a.test", stream)
    start = trio.current_time()
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    assert (await response.get_data()).endswith(truncation_event("idle_timeout"))
    assert trio.current_time() - start == 7.0
    assert stream.closed.is_set()


async def test_stream_without_events_fails_over(gateway: Gateway) -> None:
    serve(gateway, "a.test", ChunkStream([b": only a comment\n\n"]))
    good = sse(chunk("x", "stop"))
    serve(gateway, "b.test", ChunkStream(good))
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    assert response.headers["x-nexus-backend"] == "b"
    assert await response.get_data() == b"".join(good) + DONE


async def test_non_event_stream_2xx_fails_over_then_502(gateway: Gateway) -> None:
    async def json_answer(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(200, b'{"not": "a stream"}')

    gateway.upstream.handlers["a.test"] = json_answer
    gateway.upstream.handlers["b.test"] = json_answer
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    assert response.status_code == 502
    error = msgspec.json.decode(await response.get_data())["error"]
    assert error["code"] == "bad_upstream_response"


async def test_upstream_error_status_for_stream_is_json(gateway: Gateway) -> None:
    async def overloaded(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(503, b'{"error": "busy"}')

    gateway.upstream.handlers["a.test"] = overloaded
    gateway.upstream.handlers["b.test"] = overloaded
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    assert response.status_code == 503
    assert await response.get_data() == b'{"error": "busy"}'
    assert response.headers["x-should-retry"] == "false"


async def test_first_token_timeout_fails_over(
    make_gateway,
    autojump_clock: trio.testing.MockClock,  # type: ignore[no-untyped-def]
) -> None:
    gateway: Gateway = make_gateway(
        "[server]\nfirst_token_timeout_seconds = 4\n[health_check]\nenabled = false\n"
        '[[backends]]\nname = "a"\nurl = "http://a.test"\ntype = "generic"\npriority = 1\n'
        'models = ["m"]\n'
        '[[backends]]\nname = "b"\nurl = "http://b.test"\ntype = "generic"\nmodels = ["m"]\n'
    )
    slow = ChunkStream([30.0, *sse(chunk("late"))])
    serve(gateway, "a.test", slow)
    serve(gateway, "b.test", ChunkStream(sse(chunk("b", "stop"))))
    start = trio.current_time()
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    assert response.headers["x-nexus-backend"] == "b"
    assert trio.current_time() - start == 4.0
    assert slow.closed.is_set()


async def test_client_disconnect_mid_stream_closes_upstream(gateway: Gateway) -> None:
    gate = trio.Event()
    stream = ChunkStream([*sse(chunk("a")), gate])
    serve(gateway, "a.test", stream)
    call = ASGICall(gateway.app, "/v1/chat/completions", msgspec.json.encode(STREAM_CHAT))
    async with trio.open_nursery() as nursery:
        await nursery.start(call.run)
        with trio.fail_after(2):
            assert b"data: " in await call.next_body()
        assert gateway.wiring.state.in_flight.count == 1
        disconnected_at = trio.current_time()
        call.gone.set()
        with trio.fail_after(1):
            await stream.closed.wait()
            await call.finished.wait()
    assert stream.closed_at is not None
    assert stream.closed_at - disconnected_at < 0.1
    assert gateway.wiring.state.in_flight.count == 0
    assert attempts(gateway, "cancelled") == 1
    assert gateway.wiring.state.totals.cancelled == 1
    assert gateway.wiring.registry.get("a").counters.pending == 0  # type: ignore[union-attr]


async def test_client_disconnect_before_first_event_closes_upstream(gateway: Gateway) -> None:
    stream = ChunkStream([trio.Event()])
    sent = trio.Event()

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        sent.set()
        return stream_response(stream)

    gateway.upstream.handlers["a.test"] = handler
    call = ASGICall(gateway.app, "/v1/chat/completions", msgspec.json.encode(STREAM_CHAT))
    async with trio.open_nursery() as nursery:
        await nursery.start(call.run)
        with trio.fail_after(2):
            await sent.wait()
        call.gone.set()
        with trio.fail_after(1):
            await stream.closed.wait()
            await call.finished.wait()
    assert gateway.wiring.state.in_flight.count == 0
    assert attempts(gateway, "cancelled") == 1


async def test_client_disconnect_non_streaming_closes_upstream(gateway: Gateway) -> None:
    stream = ChunkStream([b'{"partial": ', trio.Event()])

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "application/json"}, stream=stream)

    gateway.upstream.handlers["a.test"] = handler
    call = ASGICall(gateway.app, "/v1/chat/completions", msgspec.json.encode(CHAT))
    async with trio.open_nursery() as nursery:
        await nursery.start(call.run)
        await trio.testing.wait_all_tasks_blocked()
        call.gone.set()
        with trio.fail_after(1):
            await stream.closed.wait()
            await call.finished.wait()
    assert gateway.wiring.state.in_flight.count == 0
    assert attempts(gateway, "cancelled") == 1


async def test_drain_deadline_cuts_a_paused_stream(
    gateway: Gateway, autojump_clock: trio.testing.MockClock
) -> None:
    stream = ChunkStream([*sse(chunk("a")), trio.Event()])
    serve(gateway, "a.test", stream)
    async with trio.open_nursery() as nursery:
        result: list[bytes] = []

        async def client() -> None:
            response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
            result.append(await response.get_data())

        nursery.start_soon(client)
        await trio.sleep(1)
        gateway.wiring.drain.close_listener(drain_timeout=2.0)
        start = trio.current_time()
    assert result[0].endswith(truncation_event("drain"))
    assert trio.current_time() - start == 2.0
    assert attempts(gateway, "cancelled") == 1


async def test_gateway_overhead_of_a_stream_excludes_the_stream_itself(
    gateway: Gateway, autojump_clock: trio.testing.MockClock
) -> None:
    events = [*sse(chunk("a")), 5.0, *sse(chunk(None, "stop")), DONE]
    serve(gateway, "a.test", ChunkStream(events))
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    await response.get_data()
    registry = gateway.wiring.metrics.registry
    labels = {"stream": "true"}
    assert registry.get_sample_value("nexus_gateway_overhead_seconds_count", labels) == 1.0
    # 5 s of upstream pacing after the first event is not gateway overhead
    assert registry.get_sample_value("nexus_gateway_overhead_seconds_sum", labels) == 0.0
