"""``/v1/messages`` to an ``anthropic`` backend: the client's request and Anthropic's answer
pass untranslated (docs/messages-api.md), while the gateway still reads usage, cost and the
stream's ending."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import msgspec
import pytest

from tests.component.fake_upstream import ChunkStream, raw_response, stream_response
from tests.component.in_process import Gateway, MakeGateway
from tests.fake_anthropic import FakeAnthropic, stream_events

CONFIG = """
[health_check]
enabled = false
[[backends]]
name = "claude"
type = "anthropic"
url = "http://claude.test"
api_key_env = "KEY"
models = ["claude-x"]
anthropic_beta = ["interleaved-thinking-2025-05-14"]
[[pricing]]
backend = "claude"
model = "claude-x"
input_usd_per_million = 1.0
output_usd_per_million = 1.0
[routing.aliases]
sonnet = "claude-x"
"""
REQUEST: dict[str, Any] = {
    "model": "sonnet",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "brief", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": "hello"}],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "context_management": {"edits": []},
}
THINKING = {"type": "thinking", "thinking": "hmm", "signature": "sig-abc"}


def message(*, thinking: bool = True) -> dict[str, Any]:
    answer = FakeAnthropic()._answer({**REQUEST, "model": "claude-x"}, "req_1")
    return {**answer, "content": [THINKING, *answer["content"]]} if thinking else answer


def native_gateway(make_gateway: MakeGateway, response: httpx.Response) -> Gateway:
    gateway = make_gateway(CONFIG, env={"KEY": "upstream-secret"})

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return response

    gateway.upstream.handlers["claude.test"] = handler
    return gateway


async def test_a_message_passes_both_ways_untranslated(make_gateway: MakeGateway) -> None:
    answer = message()
    gateway = native_gateway(make_gateway, raw_response(200, msgspec.json.encode(answer)))
    beta = "mcp-client-2025-04-04, interleaved-thinking-2025-05-14,files-api-2025-04-14"
    response = await gateway.post("/v1/messages", REQUEST, **{"anthropic-beta": beta})
    assert response.status_code == 200
    assert msgspec.json.decode(await response.get_data()) == answer  # signature and all
    [(request, body)] = gateway.upstream.requests
    assert request.url.path == "/v1/messages"
    assert msgspec.json.decode(body) == {**REQUEST, "model": "claude-x"}
    assert request.headers["x-api-key"] == "upstream-secret"
    # only the flags the backend allows (anthropic_beta) are passed on
    assert request.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert "authorization" not in request.headers
    stats = gateway.wiring.state.statistics()
    assert stats.spend.total_usd > 0  # usage read from Anthropic's own answer


async def test_an_anthropic_error_reaches_the_client_as_it_is(make_gateway: MakeGateway) -> None:
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
    gateway = native_gateway(make_gateway, raw_response(400, msgspec.json.encode(error)))
    response = await gateway.post("/v1/messages", REQUEST)
    assert response.status_code == 400
    assert msgspec.json.decode(await response.get_data()) == error


async def test_a_stream_is_relayed_event_by_event(make_gateway: MakeGateway) -> None:
    items = stream_events(message(thinking=False), "claude-x")
    gateway = native_gateway(make_gateway, stream_response(ChunkStream(list(items))))
    response = await gateway.post("/v1/messages", {**REQUEST, "stream": True})
    assert response.status_code == 200
    assert await response.get_data() == b"".join(items)
    [(_, body)] = gateway.upstream.requests
    assert "stream_options" not in msgspec.json.decode(body)
    stats = gateway.wiring.state.statistics()
    assert (stats.totals.success, stats.spend.total_usd > 0) == (1, True)


async def test_a_broken_stream_ends_with_anthropics_error_event(make_gateway: MakeGateway) -> None:
    items = stream_events(message(thinking=False), "claude-x")[:4]  # no message_stop
    gateway = native_gateway(make_gateway, stream_response(ChunkStream(list(items))))
    response = await gateway.post("/v1/messages", {**REQUEST, "stream": True})
    data = await response.get_data()
    assert data.startswith(b"".join(items))
    tail = data[len(b"".join(items)) :]
    assert tail.startswith(b"event: error\ndata: ")
    assert msgspec.json.decode(tail.split(b"data: ", 1)[1])["error"]["type"] == "api_error"
    assert gateway.wiring.state.statistics().totals.errors == 1


async def test_the_anthropic_sdk_reads_the_relayed_message(make_gateway: MakeGateway) -> None:
    gateway = native_gateway(make_gateway, raw_response(200, msgspec.json.encode(message())))
    response = await gateway.post("/v1/messages", REQUEST)
    parsed = anthropic.types.Message.model_validate(msgspec.json.decode(await response.get_data()))
    assert parsed.content[0].type == "thinking"


async def test_a_broken_stream_is_charged_its_reported_input_and_estimated_output(
    make_gateway: MakeGateway,
) -> None:
    answer = message(thinking=False)
    answer["usage"] = {**answer["usage"], "input_tokens": 100_000}
    answer["content"] = [{"type": "text", "text": "x" * 4000}]
    items = stream_events(answer, "claude-x")[:4]  # message_start, ping, block start, delta
    gateway = native_gateway(make_gateway, stream_response(ChunkStream(list(items))))
    await gateway.post("/v1/messages", {**REQUEST, "stream": True})
    spend = gateway.wiring.state.statistics().spend
    # 100,000 input tokens at $1/M, and about 1,000 output tokens estimated from 4,000 characters
    assert spend.total_usd == pytest.approx(0.101, rel=0.01)
    assert spend.estimated_usd == spend.total_usd


async def test_no_beta_flag_is_passed_on_unless_the_backend_allows_it(
    make_gateway: MakeGateway,
) -> None:
    config = CONFIG.replace('anthropic_beta = ["interleaved-thinking-2025-05-14"]\n', "")
    gateway = make_gateway(config, env={"KEY": "k"})

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(200, msgspec.json.encode(message()))

    gateway.upstream.handlers["claude.test"] = handler
    beta = {"anthropic-beta": "interleaved-thinking-2025-05-14"}
    assert (await gateway.post("/v1/messages", REQUEST, **beta)).status_code == 200
    [(request, _)] = gateway.upstream.requests
    assert "anthropic-beta" not in request.headers
