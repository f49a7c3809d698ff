"""The official ``anthropic`` SDK accepts everything the fake Anthropic server produces.

The fake is what the gateway's Anthropic translation is tested against; this is what keeps
it honest. Every response and stream event is also validated strictly against the SDK's own
pydantic types (the SDK itself builds responses without validating them).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pydantic
import pytest
import trio
from anthropic.types import Message, RawMessageStreamEvent

from tests.fake_anthropic import ERROR_TYPES, KEY, FakeAnthropic

pytestmark = pytest.mark.system

MODEL = "claude-sonnet-4"
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeAnthropic:
    server = FakeAnthropic(models=(MODEL, "claude-haiku-4"))
    await nursery.start(server.run)
    return server


def _client(fake: FakeAnthropic) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0)


def _strict_stream(fake: FakeAnthropic, body: dict[str, Any]) -> list[Any]:
    """Every event of a raw stream, validated against the SDK's event union (``ping`` is
    not in it: the SDK skips pings by their event name)."""
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    response = httpx.post(f"{fake.url}/v1/messages", json={**body, "stream": True}, headers=headers)
    events = []
    for block in response.text.strip().split("\n\n"):
        name, data = block.split("\n")
        assert name == f"event: {json.loads(data[6:])['type']}"
        if name == "event: ping":
            assert json.loads(data[6:]) == {"type": "ping"}
            continue
        events.append(_EVENT.validate_python(json.loads(data[6:]), strict=False))
    return events


async def test_sdk_accepts_plain_streamed_and_tool_use_messages(fake: FakeAnthropic) -> None:
    def session() -> None:
        with _client(fake) as client:
            run(client)

    def run(client: anthropic.Anthropic) -> None:
        hello: Any = [{"role": "user", "content": "hello"}]
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=hello)
        Message.model_validate(raw.http_response.json(), strict=False)
        plain = raw.parse()
        assert plain.content[0].type == "text"
        assert plain.content[0].text == "Hello from the fake Claude."
        assert plain.usage.cache_read_input_tokens == 3
        assert raw.http_response.headers["request-id"].startswith("req_")
        with client.messages.stream(model=MODEL, max_tokens=50, messages=hello) as stream:
            assert "".join(stream.text_stream) == plain.content[0].text
            assert stream.get_final_message().stop_reason == "end_turn"

        ask: Any = [{"role": "user", "content": "weather in Paris?"}]
        tooled = client.messages.create(model=MODEL, max_tokens=50, messages=ask, tools=TOOLS)
        (use,) = [b for b in tooled.content if b.type == "tool_use"]
        assert (use.name, use.input, tooled.stop_reason) == (
            "get_weather",
            {"city": "Paris"},
            "tool_use",
        )
        with client.messages.stream(model=MODEL, max_tokens=50, messages=ask, tools=TOOLS) as s:
            final = s.get_final_message()
        assert [b.input for b in final.content if b.type == "tool_use"] == [{"city": "Paris"}]
        answer: Any = [
            *ask,
            {"role": "assistant", "content": [b.model_dump() for b in tooled.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
            },
        ]
        done = client.messages.create(model=MODEL, max_tokens=50, messages=answer, tools=TOOLS)
        assert done.content[0].type == "text"
        assert done.content[0].text == "The tool said: sunny"
        assert [m.id for m in client.models.list()] == [MODEL, "claude-haiku-4"]
        for body in ({"messages": hello}, {"messages": ask, "tools": TOOLS}):
            events = _strict_stream(fake, {"model": MODEL, "max_tokens": 50, **body})
            assert events[0].type == "message_start"
            assert events[-1].type == "message_stop"

    await trio.to_thread.run_sync(session)


@pytest.mark.parametrize("status", sorted(ERROR_TYPES))
async def test_sdk_raises_the_documented_error_for_each_status(
    fake: FakeAnthropic, status: int
) -> None:
    expected = {
        400: anthropic.BadRequestError,
        401: anthropic.AuthenticationError,
        403: anthropic.PermissionDeniedError,
        404: anthropic.NotFoundError,
        413: anthropic.APIStatusError,
        429: anthropic.RateLimitError,
        500: anthropic.InternalServerError,
        529: anthropic.InternalServerError,
    }[status]

    def call() -> anthropic.APIStatusError:
        with _client(fake) as client, pytest.raises(expected) as info:
            client.messages.create(
                model=f"fail-{status}", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        return info.value

    error = await trio.to_thread.run_sync(call)
    assert error.status_code == status
    assert isinstance(error.body, dict)
    assert error.body["error"]["type"] == ERROR_TYPES[status]
    assert error.request_id is not None
    if status == 429:
        assert error.response.headers["retry-after"] == "7"


async def test_sdk_raises_on_an_error_event_and_the_fake_refuses_bad_turns(
    fake: FakeAnthropic,
) -> None:
    def session() -> None:
        with _client(fake) as client:
            run(client)

    def run(client: anthropic.Anthropic) -> None:
        hello: Any = [{"role": "user", "content": "hello"}]
        with (
            pytest.raises(anthropic.APIStatusError, match="overloaded_error"),
            client.messages.stream(model="stream-error", max_tokens=5, messages=hello) as s,
        ):
            s.get_final_message()
        twice: Any = [*hello, *hello]
        with pytest.raises(anthropic.BadRequestError, match="alternate"):
            client.messages.create(model=MODEL, max_tokens=5, messages=twice)
        wrong_key = anthropic.Anthropic(base_url=fake.url, api_key="nope", max_retries=0)
        with wrong_key, pytest.raises(anthropic.AuthenticationError):
            wrong_key.messages.create(model=MODEL, max_tokens=5, messages=hello)

    await trio.to_thread.run_sync(session)
