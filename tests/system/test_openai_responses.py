"""The official ``openai`` SDK's Responses API through a real ``nexus-trio serve`` to a simulated
OpenAI-compatible backend (docs/responses-api.md), and its ``models.retrieve``
(docs/api.md#routes).

The SDK's sync client runs in worker threads (its async client leaks async generators under
trio's strict finalizer, which this suite turns into errors); it never retries, so every error
seen is the gateway's answer.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
import trio
from openai.types.responses import Response

from nexus_trio.simulator import PARTIAL_EVENTS, SimulatedBackend
from tests.system.client_sdks import (
    BROKEN,
    FAST,
    TOKENS,
    chat_bodies,
    sent_secrets,
    simulated_text,
    simulated_tokens,
)
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory

pytestmark = pytest.mark.system

StartBackend = Callable[..., Awaitable[SimulatedBackend]]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": SCHEMA,
    }
]
WEATHER: Any = [{"role": "user", "content": "weather in Paris?"}]


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0, timeout=10)


@pytest.fixture
def state(tmp_path: Path) -> str:
    """``[state] dir`` in the test's directory: the SDK stores every response by default."""
    return f'[state]\ndir = "{tmp_path / "state"}"\n'


def _text_session(url: str) -> dict[str, Any]:
    with _client(url) as client:
        created = client.responses.create(model="demo", instructions="be brief", input="hello")
        events = list(client.responses.create(model="demo", input="hello", stream=True))
        with client.responses.stream(model="demo", input="hello") as stream:
            helper_events = list(stream)
            final = stream.get_final_response()
        with pytest.raises(openai.NotFoundError) as unknown:
            client.responses.create(model="no-such-model", input="hello")
    return {
        "created": created,
        "events": events,
        "helper_events": helper_events,
        "final": final,
        "unknown": unknown.value,
    }


async def test_create_and_stream(
    start_backend: StartBackend, start_gateway: GatewayFactory, state: str
) -> None:
    backend = await start_backend(**FAST)
    gateway = await start_gateway(gateway_config(backend, extra=state))
    seen = await trio.to_thread.run_sync(_text_session, gateway.url)

    created = seen["created"]
    assert isinstance(created, Response)
    assert (created.object, created.model, created.status) == ("response", "demo", "completed")
    assert created.id.startswith("resp_")
    assert [item.type for item in created.output] == ["message"]
    assert created.output_text == simulated_text()
    assert created.usage is not None
    assert created.usage.output_tokens == TOKENS
    assert created.instructions == "be brief"
    assert chat_bodies(backend)[0]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]

    events = seen["events"]
    names = [event.type for event in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == "response.completed"
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == (
        simulated_tokens()
    )
    assert [event.sequence_number for event in events] == list(range(len(events)))
    completed = events[-1].response
    assert (completed.status, completed.output_text) == ("completed", simulated_text())
    assert completed.usage.output_tokens == TOKENS
    assert chat_bodies(backend)[1]["stream_options"] == {"include_usage": True}

    # the SDK's stream helper builds the same Response from the events
    assert [event.type for event in seen["helper_events"]] == names
    final = seen["final"]
    assert (final.status, final.output_text) == ("completed", simulated_text())
    assert final.usage.output_tokens == TOKENS

    unknown = seen["unknown"]
    assert unknown.status_code == 404
    assert unknown.code == "model_not_found"
    assert len(chat_bodies(backend)) == 3
    assert sent_secrets(backend, "client-key") == []


def _function_call_session(url: str) -> dict[str, Any]:
    with _client(url) as client:
        called = client.responses.create(model="demo", input=WEATHER, tools=TOOLS)
        output = {"type": "function_call_output", "call_id": "", "output": "sunny, 21C"}
        output["call_id"] = called.output[0].call_id
        # the SDK's own output items go back as input, as its users send them; without tools:
        # the simulator answers every request offering tools with a call
        answered = client.responses.create(model="demo", input=[*WEATHER, *called.output, output])
        with client.responses.stream(model="demo", input=WEATHER, tools=TOOLS) as stream:
            streamed = stream.get_final_response()
    return {"called": called, "answered": answered, "streamed": streamed}


async def test_a_function_call_round_trip(
    start_backend: StartBackend, start_gateway: GatewayFactory, state: str
) -> None:
    backend = await start_backend(**FAST)
    # the name "demo" says nothing about tool support: declare it (docs/routing.md)
    config = gateway_config(backend, extra=state) + "[backends.capabilities.demo]\ntools = true\n"
    gateway = await start_gateway(config)
    seen = await trio.to_thread.run_sync(_function_call_session, gateway.url)

    called = seen["called"]
    (call,) = called.output
    assert (call.type, call.name, call.arguments, call.status) == (
        "function_call",
        "get_weather",
        "{}",
        "completed",
    )
    assert call.call_id
    answered = seen["answered"]
    assert (answered.status, answered.output_text) == ("completed", simulated_text())
    streamed = seen["streamed"]
    assert [(item.type, item.name, item.arguments) for item in streamed.output] == [
        ("function_call", "get_weather", "{}")
    ]

    offered, replied, _ = chat_bodies(backend)
    assert offered["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": SCHEMA,
            },
        }
    ]
    sent_call = {
        "id": call.call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    assert replied["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [sent_call]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21C"},
    ]


def _models(url: str) -> dict[str, Any]:
    with _client(url) as client:
        found = client.models.retrieve("demo")
        with pytest.raises(openai.NotFoundError) as unknown:
            client.models.retrieve("no-such-model")
    return {"found": found, "unknown": unknown.value}


async def test_models_retrieve(start_backend: StartBackend, start_gateway: GatewayFactory) -> None:
    backend = await start_backend(**FAST)
    gateway = await start_gateway(gateway_config(backend))
    seen = await trio.to_thread.run_sync(_models, gateway.url)

    found = seen["found"]
    assert (found.id, found.object) == ("demo", "model")
    assert isinstance(found.created, int)
    unknown = seen["unknown"]
    assert unknown.status_code == 404
    assert unknown.code == "model_not_found"
    assert backend.received == []  # answered from the registry


def _broken_streams(url: str) -> dict[str, Any]:
    raw: list[Any] = []
    helper: list[Any] = []
    with _client(url) as client:
        stream = client.responses.create(model="demo", input="hello", stream=True)
        with pytest.raises(openai.APIError) as from_create:
            raw.extend(stream)  # keeps what arrived before the raise
        with (
            client.responses.stream(model="demo", input="hello") as managed,
            pytest.raises(openai.APIError) as from_helper,
        ):
            helper.extend(managed)
    return {"raw": raw, "create": from_create.value, "helper": helper, "error": from_helper.value}


async def test_a_broken_stream_raises_during_iteration(
    start_backend: StartBackend, start_gateway: GatewayFactory, state: str
) -> None:
    backend = await start_backend(**BROKEN)
    gateway = await start_gateway(gateway_config(backend, extra=state))
    seen = await trio.to_thread.run_sync(_broken_streams, gateway.url)

    # the tokens sent before the reset arrived, then response.failed, then the SDK raised
    raw = seen["raw"]
    deltas = [event.delta for event in raw if event.type == "response.output_text.delta"]
    assert deltas == simulated_tokens(PARTIAL_EVENTS)
    assert raw[-1].type == "response.failed"
    assert raw[-1].response.status == "failed"
    assert "response.completed" not in [event.type for event in raw]
    assert [event.type for event in seen["helper"]] == [event.type for event in raw]
    for error in (seen["create"], seen["error"]):
        assert error.code == "stream_truncated"
        assert "backend connection failed" in error.message


def _stored_session(url: str) -> dict[str, Any]:
    with _client(url) as client:
        first = client.responses.create(
            model="demo", instructions="be brief", input="hello", store=True
        )
        with client.responses.stream(
            model="demo", input="and then?", previous_response_id=first.id
        ) as stream:
            second = stream.get_final_response()
        third = client.responses.create(model="demo", input="bye", previous_response_id=second.id)
        retrieved = client.responses.retrieve(second.id)
        unstored = client.responses.create(model="demo", input="forget me", store=False)
        with pytest.raises(openai.NotFoundError) as not_stored:
            client.responses.retrieve(unstored.id)
        deleted = client.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError) as gone:
            client.responses.retrieve(first.id)
        with pytest.raises(openai.NotFoundError) as not_continued:
            client.responses.create(model="demo", input="more", previous_response_id=first.id)
    return {
        "first": first,
        "second": second,
        "third": third,
        "retrieved": retrieved,
        "not_stored": not_stored.value,
        "deleted": deleted,
        "gone": gone.value,
        "not_continued": not_continued.value,
    }


def _after_restart(url: str, second_id: str, third_id: str) -> dict[str, Any]:
    with _client(url) as client:
        retrieved = client.responses.retrieve(third_id)
        continued = client.responses.create(
            model="demo", input="still there?", previous_response_id=second_id
        )
    return {"retrieved": retrieved, "continued": continued}


async def test_stored_responses_continue_and_survive_a_restart(
    start_backend: StartBackend, start_gateway: GatewayFactory, state: str
) -> None:
    backend = await start_backend(**FAST)
    config = gateway_config(backend, extra=state)
    gateway = await start_gateway(config)
    seen = await trio.to_thread.run_sync(_stored_session, gateway.url)

    first, second, third = seen["first"], seen["second"], seen["third"]
    assert (first.store, second.previous_response_id) == (True, first.id)
    answer = simulated_text()
    turns = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "and then?"},
    ]
    bodies = chat_bodies(backend)
    assert [body["messages"] for body in bodies[:3]] == [
        [{"role": "system", "content": "be brief"}, turns[0]],
        turns,  # the stored conversation, without the old instructions
        [*turns, {"role": "assistant", "content": answer}, {"role": "user", "content": "bye"}],
    ]
    # the streamed one, as its response.completed had it (the helper parses it further)
    retrieved = seen["retrieved"]
    assert isinstance(retrieved, Response)
    assert Response.model_validate(second.model_dump(exclude_none=True)) == retrieved
    assert seen["not_stored"].status_code == 404
    assert seen["deleted"] is None
    assert seen["gone"].status_code == 404
    error = seen["not_continued"]
    assert (error.code, error.param) == ("previous_response_not_found", "previous_response_id")
    assert len(chat_bodies(backend)) == 4  # the refused follow-up reached no backend

    gateway.send_signal(signal.SIGTERM)
    with trio.fail_after(10):
        assert await gateway.wait_exit() == 0
    restarted = await start_gateway(config)
    after = await trio.to_thread.run_sync(_after_restart, restarted.url, second.id, third.id)
    assert after["retrieved"] == third
    assert after["continued"].previous_response_id == second.id
    assert chat_bodies(backend)[-1]["messages"] == [
        *turns,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "still there?"},
    ]
