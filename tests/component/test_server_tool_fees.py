"""Server-side tool uses a native backend reports are charged at ``[[pricing]]
server_tool_usd`` (docs/spend.md#server-tool-fees)."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from tests.component.fake_upstream import ChunkStream, raw_response, stream_response
from tests.component.in_process import MakeGateway
from tests.component.test_native_messages import CONFIG as MESSAGES_CONFIG
from tests.component.test_native_messages import REQUEST as MESSAGES_REQUEST
from tests.component.test_native_messages import message
from tests.component.test_native_responses import CONFIG as RESPONSES_CONFIG
from tests.component.test_native_responses import response_object
from tests.fake_anthropic import sse, stream_events

#: 1 USD per million tokens in both configurations: the tokens' part of a cost.
MESSAGES_FEES = MESSAGES_CONFIG.replace(
    "output_usd_per_million = 1.0\n",
    "output_usd_per_million = 1.0\nserver_tool_usd = {web_search_requests = 0.01}\n",
)
RESPONSES_FEES = RESPONSES_CONFIG.replace(
    "output_usd_per_million = 1.0\n",
    "output_usd_per_million = 1.0\nserver_tool_usd = {web_search_call = 0.025}\n",
)
USES = {"web_search_requests": 3, "web_fetch_requests": 2}


async def spend_after(
    make_gateway: MakeGateway,
    config: str,
    host: str,
    response: httpx.Response,
    path: str,
    body: dict[str, Any],
) -> float:
    gateway = make_gateway(config, env={"KEY": "k"})

    async def handler(request: httpx.Request, data: bytes) -> httpx.Response:
        return response

    gateway.upstream.handlers[host] = handler
    assert (await gateway.post(path, body)).status_code == 200
    return gateway.wiring.state.statistics().spend.total_usd


def tokens_usd(usage: dict[str, Any]) -> float:
    counts = (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    )
    return sum(usage.get(name, 0) for name in counts) / 1e6


async def test_an_anthropic_answers_web_searches_are_charged(make_gateway: MakeGateway) -> None:
    answer = message(thinking=False)
    answer["usage"] = {**answer["usage"], "server_tool_use": USES}
    response = raw_response(200, msgspec.json.encode(answer))
    spent = await spend_after(
        make_gateway, MESSAGES_FEES, "claude.test", response, "/v1/messages", MESSAGES_REQUEST
    )
    # 3 searches at 0.01; web fetches have no price
    assert spent == pytest.approx(tokens_usd(answer["usage"]) + 0.03)


async def test_a_streams_web_searches_are_charged(make_gateway: MakeGateway) -> None:
    answer = message(thinking=False)
    items = stream_events(answer, "claude-x")
    usage = {"output_tokens": answer["usage"]["output_tokens"], "server_tool_use": USES}
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage}
    items[-2] = sse(delta)
    response = stream_response(ChunkStream(items))
    body = {**MESSAGES_REQUEST, "stream": True}
    spent = await spend_after(
        make_gateway, MESSAGES_FEES, "claude.test", response, "/v1/messages", body
    )
    assert spent == pytest.approx(tokens_usd(answer["usage"]) + 0.03)


async def test_a_responses_backends_web_search_calls_are_charged(
    make_gateway: MakeGateway,
) -> None:
    searches = [{"type": "web_search_call", "id": f"ws_{n}", "status": "completed"} for n in (1, 2)]
    calls = [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]
    answer = response_object()
    answer["output"] = [*searches, *calls, *answer["output"]]
    response = raw_response(200, msgspec.json.encode(answer))
    config = RESPONSES_FEES.replace(
        'models = ["gpt-x"]\n', 'models = ["gpt-x"]\nnative_tools = ["web_search"]\n', 1
    )
    body = {"model": "gpt-x", "input": "search", "tools": [{"type": "web_search"}]}
    spent = await spend_after(make_gateway, config, "native.test", response, "/v1/responses", body)
    assert spent == pytest.approx((7 + 3) / 1e6 + 0.05)
