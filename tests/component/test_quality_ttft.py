"""Time to first token through the real request path (docs/quality.md#outcomes): measured to
the first generated content, not the first event, and recorded only for streams that have one;
read back from the quality store, ``/v1/stats`` and ``/metrics``. Time is virtual
(``autojump_clock``) and asserted exactly.
"""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio
import trio.testing

from tests.component.client import CHAT, PATH, STREAM_CHAT, ASGICall
from tests.component.configs import config_toml, fake_backend
from tests.component.fake_upstream import (
    DONE,
    ROLE_ONLY,
    ChunkStream,
    chunk,
    script,
    sse,
    stream_response,
)
from tests.component.in_process import MakeGateway
from tests.component.readings import agent_entry, backend_entry, quality, sample, stats, tick

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
    assert gateway.wiring.registry.get("a").counters.ttft_ewma_ms is None  # type: ignore[union-attr]
