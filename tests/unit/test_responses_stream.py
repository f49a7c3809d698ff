"""Chat-completions stream chunks → Responses stream events (docs/responses-api.md#streams), fed
the chunk sequences real servers send, and read back by the official openai SDK."""

from __future__ import annotations

import json
from typing import Any

import openai
import pydantic
import pytest
from openai.types.responses import ResponseStreamEvent

from nexus_trio.dialects.responses import ResponsesStream, chat_request, response_object
from tests.unit.responses_shapes import (
    USAGE,
    chunk,
    codex_body,
    completion,
    encode,
    read_sse,
    sse_client,
    tool_delta,
    usage_chunk,
)

CODEX = chat_request(encode(codex_body()))[1]
_EVENT = pydantic.TypeAdapter(ResponseStreamEvent)


def run(chunks: list[str], *, end: str | None = None) -> tuple[bytes, list[dict[str, Any]]]:
    """Feed ``chunks``, then end well (``end`` None) or truncated with message ``end``; the
    bytes, and the events, each checked against the SDK's event types and numbered in order."""
    stream = ResponsesStream(request=CODEX, model="asked", response_id="resp_s", created_at=9)
    blocks = [stream.feed(data) for data in chunks]
    blocks.append(stream.done() if end is None else stream.truncated(end))
    raw = b"".join(blocks)
    events = read_sse(raw)
    for event in events:
        _EVENT.validate_python(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return raw, events


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"].removeprefix("response.") for event in events]


TEXT = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo."}),
    chunk({}, "stop"),
    usage_chunk(),
]


def test_a_text_stream_as_llama_cpp_sends_it() -> None:
    raw, events = run(TEXT)
    assert kinds(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    assert [e["delta"] for e in events if e["type"].endswith("delta")] == ["Hel", "lo."]
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == []
    assert events[6]["text"] == "Hello."
    final = events[-1]["response"]
    whole = json.loads(
        response_object(
            completion({"content": "Hello."}, usage=USAGE),
            request=CODEX,
            model="asked",
            response_id="resp_s",
            created_at=9,
        )
    )
    assert final == whole  # the stream ends on the same Response object as the whole answer
    events_seen = [
        e.type for e in sse_client([raw]).responses.create(model="m", input="x", stream=True)
    ]
    assert events_seen == [e["type"] for e in events]
    with sse_client([raw]).responses.stream(model="m", input="x") as sdk_stream:
        response = sdk_stream.get_final_response()
    assert (response.output_text, response.usage and response.usage.total_tokens) == ("Hello.", 52)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_output_streams_as_a_reasoning_item(field: str) -> None:
    chunks = [
        chunk({field: "Two plus"}),
        chunk({field: " two."}),
        chunk({"content": "4"}),
        chunk({}, "stop"),
    ]
    raw, events = run(chunks)
    assert kinds(events)[2:12] == [
        "output_item.added",
        "content_part.added",
        "reasoning_text.delta",
        "reasoning_text.delta",
        "reasoning_text.done",
        "content_part.done",
        "output_item.done",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
    ]
    assert events[6]["text"] == "Two plus two."
    output = events[-1]["response"]["output"]
    assert [(item["type"], item["id"]) for item in output] == [
        ("reasoning", "rs_s_0"),
        ("message", "msg_s_1"),
    ]
    assert output[0]["content"] == [{"type": "reasoning_text", "text": "Two plus two."}]
    assert events[-1]["response"]["usage"] is None  # no usage chunk came
    with sse_client([raw]).responses.stream(model="m", input="x") as sdk_stream:
        assert sdk_stream.get_final_response().output_text == "4"


VLLM_TOOLS = [
    chunk({"role": "assistant", "content": None}),
    chunk(tool_delta(0, id="call_a", name="shell", arguments="")),
    chunk(tool_delta(0, arguments='{"command": ')),
    chunk(tool_delta(0, arguments='["ls"]}')),
    chunk(tool_delta(1, id="call_b", name="mcp__files__read", arguments='{"p"')),
    chunk(tool_delta(1, arguments=": 1}")),
    chunk({}, "tool_calls"),
    usage_chunk(),
]


def test_two_parallel_tool_calls_split_over_chunks() -> None:
    raw, events = run(VLLM_TOOLS)
    assert kinds(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "function_call_arguments.done",
        "output_item.done",
        "completed",
    ]
    assert events[2]["item"] == {
        "type": "function_call",
        "id": "fc_s_0",
        "call_id": "call_a",
        "name": "shell",
        "arguments": "",
        "status": "in_progress",
    }
    assert events[5]["item"]["namespace"] == "mcp__files__"
    calls = events[-1]["response"]["output"]
    assert [(c["call_id"], c["name"], c["arguments"]) for c in calls] == [
        ("call_a", "shell", '{"command": ["ls"]}'),
        ("call_b", "read", '{"p": 1}'),
    ]
    assert all(c["status"] == "completed" for c in calls)
    with sse_client([raw]).responses.stream(model="m", input="x") as sdk_stream:
        final = sdk_stream.get_final_response()
    assert [(c.type, c.arguments) for c in final.output] == [
        ("function_call", '{"command": ["ls"]}'),
        ("function_call", '{"p": 1}'),
    ]


def test_whole_tool_calls_in_one_chunk_without_indexes_as_ollama_sends_them() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "shell", "arguments": "{}"}},
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "update_plan", "arguments": '{"x":1}'},
        },
    ]
    _, events = run([chunk({"content": "Sure."}), chunk({"tool_calls": calls}, "tool_calls")])
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["message", "function_call", "function_call"]
    assert [item.get("call_id") for item in output[1:]] == ["call_1", "call_2"]
    assert output[0]["content"][0]["text"] == "Sure."


def test_text_after_a_tool_call_opens_a_new_message() -> None:
    chunks = [
        chunk({"content": "A"}),
        chunk(tool_delta(0, id="c", name="shell", arguments="{}")),
        chunk({"content": "B"}),
        chunk({}, "stop"),
    ]
    _, events = run(chunks)
    output = events[-1]["response"]["output"]
    assert [(item["type"], item["id"]) for item in output] == [
        ("message", "msg_s_0"),
        ("function_call", "fc_s_1"),
        ("message", "msg_s_2"),
    ]


def test_a_stream_cut_by_max_tokens_ends_incomplete() -> None:
    raw, events = run([chunk({"content": "Once upon a"}), chunk({}, "length"), usage_chunk()])
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["status"] == "incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["output"][0]["status"] == "incomplete"
    seen = [e.type for e in sse_client([raw]).responses.create(model="m", input="x", stream=True)]
    assert seen[-1] == "response.incomplete"


def test_an_empty_stream_still_answers_a_message() -> None:
    _, events = run([])
    assert kinds(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "content_part.added",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == ""


def test_a_chunk_that_is_not_json_adds_nothing() -> None:
    stream = ResponsesStream(request=CODEX, model="m", response_id="resp_1", created_at=0)
    assert stream.feed("{oops") == b""
    assert kinds(read_sse(stream.feed(chunk({"content": "x"}))))[:2] == ["created", "in_progress"]


@pytest.mark.parametrize("chunks", [[], TEXT[:2], VLLM_TOOLS[:3]])
def test_a_truncated_stream_fails_and_the_sdk_raises(chunks: list[str]) -> None:
    raw, events = run(chunks, end="The backend 'gpu-1' closed the stream.")
    assert kinds(events)[:2] == ["created", "in_progress"]
    failed, error = events[-2:]
    assert failed["type"] == "response.failed"
    response = failed["response"]
    assert response["status"] == "failed"
    assert response["error"] == {
        "code": "server_error",
        "message": "The backend 'gpu-1' closed the stream.",
    }
    assert all(item["status"] == "incomplete" for item in response["output"])
    assert len(response["output"]) == (1 if chunks else 0)
    assert (error["type"], error["code"]) == ("error", "stream_truncated")
    assert error["error"]["message"] == error["message"]
    with pytest.raises(openai.APIError, match="closed the stream"):
        for _ in sse_client([raw]).responses.create(model="m", input="x", stream=True):
            pass
    with (
        pytest.raises(openai.APIError, match="closed the stream"),
        sse_client([raw]).responses.stream(model="m", input="x") as sdk_stream,
    ):
        sdk_stream.get_final_response()
