"""The Messages and Responses APIs (docs/messages-api.md, docs/responses-api.md) through the
gateway to a real llama-server, driven by the official ``anthropic`` and ``openai`` SDKs.

What a real server sends (its usage, its finish reasons, its first chunk with a role and
``content: null``) is translated into what the SDKs parse. The assertions are on shapes and
on the text being there, never on the model's wording.
"""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
import trio

from tests.real.gateway_client import sdk_client
from tests.real.llama_server import ServerFactory, real_config
from tests.system.gateway_process import GatewayFactory

pytestmark = pytest.mark.real

MODEL = "smol-chat"
MAX_TOKENS = 8
#: This ``anthropic`` SDK has no ``temperature`` argument; the API (and the gateway) take it.
GREEDY = {"temperature": 0}
HELLO: Any = [{"role": "user", "content": "Say hello."}]


def _messages_session(url: str) -> dict[str, Any]:
    """``messages.create`` and ``messages.stream``; no retries, so errors are the gateway's."""
    with anthropic.Anthropic(base_url=url, api_key="k", max_retries=0, timeout=30) as client:
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=MAX_TOKENS, messages=HELLO, extra_body=GREEDY
        )
        with client.messages.stream(
            model=MODEL, max_tokens=MAX_TOKENS, messages=HELLO, extra_body=GREEDY
        ) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
    return {"raw": raw, "pieces": pieces, "final": final}


def _assert_message(message: anthropic.types.Message) -> None:
    assert (message.type, message.role, message.model) == ("message", "assistant", MODEL)
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text.strip()
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert 1 <= message.usage.output_tokens <= MAX_TOKENS
    # the server's prompt tokens: llama.cpp reuses a cached prompt prefix and says so, and
    # Anthropic's input_tokens leaves out the tokens read from the cache
    usage = message.usage
    assert usage.input_tokens + (usage.cache_read_input_tokens or 0) > 0


async def test_messages_create_and_stream(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    llama = await start_llama(MODEL)
    gateway = await start_gateway(real_config(llama))
    seen = await trio.to_thread.run_sync(_messages_session, gateway.url)

    raw = seen["raw"]
    assert raw.status_code == 200
    assert raw.headers["x-nexus-backend"] == MODEL
    _assert_message(raw.parse())
    final = seen["final"]
    _assert_message(final)
    assert "".join(seen["pieces"]) == final.content[0].text


def _count_tokens(url: str) -> Any:
    with anthropic.Anthropic(base_url=url, api_key="k", max_retries=0, timeout=30) as client:
        return client.messages.with_raw_response.count_tokens(model=MODEL, messages=HELLO)


async def test_count_tokens_uses_the_servers_tokenizer(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    llama = await start_llama(MODEL)
    gateway = await start_gateway(real_config(llama))
    raw = await trio.to_thread.run_sync(_count_tokens, gateway.url)
    assert raw.status_code == 200
    assert raw.headers["x-nexus-token-count"] == "tokenizer"
    # "Say hello." is a few tokens for SmolLM2's tokenizer; the estimate would say 3
    assert 1 <= raw.parse().input_tokens <= 10


def _responses_session(url: str) -> dict[str, Any]:
    client = sdk_client(url)
    raw = client.responses.with_raw_response.create(
        model=MODEL, input="Say hello.", max_output_tokens=MAX_TOKENS, temperature=0, store=False
    )
    with client.responses.stream(
        model=MODEL, input="Say hello.", max_output_tokens=MAX_TOKENS, temperature=0, store=False
    ) as stream:
        events = list(stream)
    client.close()
    return {"raw": raw, "events": events}


def _assert_response(response: Any) -> None:
    assert (response.object, response.model) == ("response", MODEL)
    assert response.id.startswith("resp_")
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text.strip()
    if response.status == "incomplete":
        assert response.incomplete_details.reason == "max_output_tokens"
    else:
        assert response.status == "completed"
    assert 1 <= response.usage.output_tokens <= MAX_TOKENS
    assert response.usage.input_tokens > 0


async def test_responses_create_and_stream(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    llama = await start_llama(MODEL)
    gateway = await start_gateway(real_config(llama))
    seen = await trio.to_thread.run_sync(_responses_session, gateway.url)

    raw = seen["raw"]
    assert raw.status_code == 200
    assert raw.headers["x-nexus-backend"] == MODEL
    _assert_response(raw.parse())
    events = seen["events"]
    assert [event.type for event in events[:2]] == ["response.created", "response.in_progress"]
    # the final Response comes with response.completed, or response.incomplete when the
    # answer hit max_output_tokens (then the SDK's get_final_response() raises, as it does
    # with OpenAI's own API: it returns only a completed response)
    final = events[-1].response
    assert events[-1].type == f"response.{final.status}"
    _assert_response(final)
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == final.output_text
