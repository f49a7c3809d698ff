"""Chat-completions answers, streams and errors → the Messages API's shapes, checked against
the official ``anthropic`` SDK's types and its stream reader (docs/messages-api.md#responses,
docs/messages-api.md#streams, docs/messages-api.md#errors)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pydantic
import pytest

from nexus_trio import errors
from nexus_trio.dialects.messages import (
    MessagesStream,
    error_body,
    error_from_chat,
    message_response,
)
from tests.unit.messages_fixtures import chunk, encoded, sdk_client, tool_delta, usage_chunk

EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)


def completion(message: dict[str, Any], finish: str | None = "stop", **extra: Any) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant"} | message, "finish_reason": finish}
    return encoded({"id": "chatcmpl-7", "object": "chat.completion", "created": 1,
                    "model": "backend-model", "choices": [choice | extra.pop("choice", {})],
                    **extra})  # fmt: skip


def answered(chat: bytes) -> dict[str, Any]:
    body = message_response(chat, model="claude-x")
    anthropic.types.Message.model_validate_json(body)  # strict: every required field, typed
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def test_a_whole_answer_becomes_thinking_text_and_tool_use_blocks() -> None:
    out = answered(completion(
        {"reasoning_content": "Think.", "content": "Calling.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "f", "arguments": '{"a": [1, "b"]}'}},
            {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{oops"}},
            {"type": "function", "function": {"name": "h", "arguments": ""}},
        ]},
        "tool_calls",
        usage={"prompt_tokens": 30, "completion_tokens": 9,
               "prompt_tokens_details": {"cached_tokens": 20}},
    ))  # fmt: skip
    assert (out["id"], out["type"], out["role"], out["model"]) == (
        "msg_chatcmpl-7", "message", "assistant", "claude-x")  # fmt: skip
    thinking, text, first, second, third = out["content"]
    assert thinking == {"type": "thinking", "thinking": "Think.", "signature": ""}
    assert text == {"type": "text", "text": "Calling."}
    assert first == {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": [1, "b"]}}
    assert (second["name"], second["input"]) == ("g", {})
    assert third["id"].startswith("toolu_")
    assert third["input"] == {}
    assert (out["stop_reason"], out["stop_sequence"]) == ("tool_use", None)
    assert out["usage"] == {"input_tokens": 10, "output_tokens": 9, "cache_read_input_tokens": 20}


def test_ollamas_reasoning_field_and_a_missing_id() -> None:
    out = answered(encoded({"choices": [{"message": {"reasoning": "R", "content": "C"}}]}))
    assert [b["type"] for b in out["content"]] == ["thinking", "text"]
    assert out["id"].startswith("msg_")
    assert len(out["id"]) > len("msg_") + 8
    assert out["usage"] == {"input_tokens": 0, "output_tokens": 0}


def test_an_empty_answer_still_has_a_text_block() -> None:
    assert answered(completion({"content": None}))["content"] == [{"type": "text", "text": ""}]


@pytest.mark.parametrize(
    ("finish", "choice", "calls", "expected"),
    [
        ("stop", {}, False, ("end_turn", None)),
        (None, {}, False, ("end_turn", None)),
        ("length", {}, False, ("max_tokens", None)),
        ("tool_calls", {}, True, ("tool_use", None)),
        ("stop", {}, True, ("tool_use", None)),
        ("content_filter", {}, False, ("refusal", None)),
        ("stop", {"stop_reason": "END"}, False, ("stop_sequence", "END")),
        ("stop", {"stop_reason": 128001}, False, ("end_turn", None)),
        ("abort", {}, False, ("end_turn", None)),
    ],
)
def test_stop_reasons(
    finish: str | None, choice: dict[str, Any], calls: bool, expected: tuple[str, str | None]
) -> None:
    message: dict[str, Any] = {"content": "x"}
    if calls:
        message["tool_calls"] = [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]
    out = answered(completion(message, finish, choice=choice))
    assert (out["stop_reason"], out["stop_sequence"]) == expected


@pytest.mark.parametrize(
    "body", [b"<html>", b"{}", b'{"choices": []}', b'{"error": {"message": "x"}}', b"[1]"]
)
def test_a_body_that_is_no_chat_completion_is_a_bad_upstream_response(body: bytes) -> None:
    with pytest.raises(errors.BadUpstreamResponse):
        message_response(body, model="m")


# -- streams ----------------------------------------------------------------------------------


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of complete SSE blocks, each checked against the SDK's types."""
    assert raw.endswith(b"\n\n")
    out = []
    for block in raw.decode().split("\n\n")[:-1]:
        name_line, data_line = block.split("\n")
        name, data = name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        if name not in ("ping", "error"):
            EVENT.validate_python(data)
        out.append((name, data))
    return out


def streamed(*chunks: str) -> bytes:
    stream = MessagesStream(model="claude-x", message_id="msg_s1")
    return b"".join(stream.feed(data) for data in chunks) + stream.done()


def final_message(raw: bytes) -> anthropic.types.Message:
    """What ``messages.stream()`` of the official SDK makes of the events."""
    client = sdk_client(200, raw, stream=True)
    with client.messages.stream(
        model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        return stream.get_final_message()


def test_a_text_stream_as_llama_cpp_sends_it() -> None:
    raw = streamed(
        chunk({"role": "assistant", "content": None}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        usage_chunk(12, 2, cached=4),
    )
    names = [name for name, _ in events(raw)]
    assert names == [
        "message_start", "ping", "content_block_start", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    start = events(raw)[0][1]["message"]
    assert (start["id"], start["model"], start["content"]) == ("msg_s1", "claude-x", [])
    delta = events(raw)[6][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"output_tokens": 2, "input_tokens": 8, "cache_read_input_tokens": 4}
    message = final_message(raw)
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "Hello")]
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == (
        "end_turn", 8, 2)  # fmt: skip


def test_reasoning_then_text_becomes_a_thinking_block_then_a_text_block() -> None:
    raw = streamed(
        chunk({"role": "assistant", "reasoning_content": "Let me"}),
        chunk({"reasoning_content": " think."}),
        chunk({"content": "Answer."}),
        chunk({}, "stop"),
    )
    message = final_message(raw)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Let me think."
    assert message.content[1].text == "Answer."
    assert [d["index"] for n, d in events(raw) if n.startswith("content_block")] == [
        0, 0, 0, 0, 1, 1, 1]  # fmt: skip


def test_two_parallel_tool_calls_split_over_chunks() -> None:
    raw = streamed(
        chunk({"role": "assistant", "content": "Checking."}),
        chunk(tool_delta(0, id="call_a", name="weather", arguments="")),
        chunk(tool_delta(0, arguments='{"ci')),
        chunk(tool_delta(0, arguments='ty": "Oslo"}')),
        chunk(tool_delta(1, id="call_b", name="time", arguments='{"tz":')),
        chunk(tool_delta(1, arguments=' "CET"}')),
        chunk({}, "tool_calls"),
        usage_chunk(50, 20),
    )
    message = final_message(raw)
    text, first, second = message.content
    assert text.type == "text"
    assert (first.type, first.id, first.name, first.input) == (
        "tool_use", "call_a", "weather", {"city": "Oslo"})  # fmt: skip
    assert (second.id, second.input) == ("call_b", {"tz": "CET"})
    assert message.stop_reason == "tool_use"
    deltas = [d["delta"] for n, d in events(raw) if n == "content_block_delta"]
    assert {"type": "input_json_delta", "partial_json": '{"city": "Oslo"}'} in deltas


def test_whole_tool_calls_in_one_chunk_as_ollama_sends_them() -> None:
    calls = {"tool_calls": [
        {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"index": 1, "id": "c2", "type": "function",
         "function": {"name": "g", "arguments": '{"x": 1}'}},
    ]}  # fmt: skip
    message = final_message(streamed(chunk(calls), chunk({}, "stop")))
    assert [(b.name, b.input) for b in message.content] == [
        ("f", {}), ("g", {"x": 1})]  # fmt: skip
    assert message.stop_reason == "tool_use"


def test_a_fragment_for_a_call_whose_block_closed_is_dropped() -> None:
    raw = streamed(
        chunk(tool_delta(0, id="c1", name="f", arguments='{"a": 1}')),
        chunk(tool_delta(1, id="c2", name="g", arguments="{}")),
        chunk(tool_delta(0, arguments=', "late": 2}')),
        chunk({}, "tool_calls"),
    )
    assert [b.input for b in final_message(raw).content] == [{"a": 1}, {}]


def test_invalid_streamed_arguments_become_an_empty_input() -> None:
    raw = streamed(chunk(tool_delta(0, id="c", name="f", arguments='{"a": ')), chunk({}, "length"))
    message = final_message(raw)
    assert (message.content[0].input, message.stop_reason) == ({}, "max_tokens")


def test_an_empty_stream_still_opens_and_closes_a_text_block() -> None:
    stream = MessagesStream(model="m", message_id="msg_e")
    names = [name for name, _ in events(stream.done())]
    assert names == ["message_start", "ping", "content_block_start", "content_block_stop",
                     "message_delta", "message_stop"]  # fmt: skip
    delta = events(stream.done())[-2][1]
    assert delta["usage"] == {"output_tokens": 0}


def test_only_the_first_feed_opens_the_message_and_a_chunk_that_is_no_json_adds_nothing() -> None:
    stream = MessagesStream(model="m", message_id="msg_x")
    assert [n for n, _ in events(stream.feed(chunk({"role": "assistant"})))] == [
        "message_start", "ping"]  # fmt: skip
    assert stream.feed("not json") == b""
    assert stream.feed(chunk({"content": ""})) == b""


def test_a_stop_string_vllm_names_is_the_stop_sequence() -> None:
    raw = streamed(chunk({"content": "a"}), chunk({}, "stop", stop_reason="###"))
    assert events(raw)[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "###"}


def test_a_truncated_stream_makes_the_sdk_raise() -> None:
    stream = MessagesStream(model="m", message_id="msg_t")
    raw = stream.feed(chunk({"content": "partial"})) + stream.truncated("The backend went away.")
    assert events(raw)[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": "The backend went away."}},
    )
    client = sdk_client(200, raw, stream=True)
    with pytest.raises(anthropic.APIStatusError, match="The backend went away"):
        for _ in client.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            pass
    with pytest.raises(anthropic.APIStatusError):
        final_message(raw)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "invalid_value", (400, "invalid_request_error")),
        (401, "invalid_api_key", (401, "authentication_error")),
        (403, "model_not_allowed", (403, "permission_error")),
        (404, "model_not_found", (404, "not_found_error")),
        (405, "method_not_allowed", (405, "invalid_request_error")),
        (413, "request_too_large", (413, "request_too_large")),
        (429, "rate_limit_exceeded", (429, "rate_limit_error")),
        (429, "budget_exceeded", (429, "rate_limit_error")),
        (500, "internal_error", (500, "api_error")),
        (502, "backend_unavailable", (502, "api_error")),
        (503, "overloaded", (529, "overloaded_error")),
        (503, "queue_full", (529, "overloaded_error")),
        (503, "queue_timeout", (529, "overloaded_error")),
        (503, "no_available_backend", (529, "overloaded_error")),
        (503, "shutting_down", (503, "api_error")),
        (504, "backend_timeout", (504, "timeout_error")),
    ],
)
def test_gateway_errors_in_anthropics_envelope(
    status: int, code: str, expected: tuple[int, str]
) -> None:
    out_status, body = error_body(status, code, "Why it failed.")
    assert (out_status, json.loads(body)) == (expected[0], {
        "type": "error", "error": {"type": expected[1], "message": "Why it failed."}})  # fmt: skip


@pytest.mark.parametrize(
    ("status", "sdk_error"),
    [(400, anthropic.BadRequestError), (401, anthropic.AuthenticationError),
     (404, anthropic.NotFoundError), (429, anthropic.RateLimitError),
     (529, anthropic.OverloadedError), (504, anthropic.GatewayTimeoutError)],
)  # fmt: skip
def test_the_sdk_raises_its_own_class_for_each_error(status: int, sdk_error: type) -> None:
    answer_status, body = error_body(status, None, "Refused")
    client = sdk_client(answer_status, body)
    with pytest.raises(sdk_error, match="Refused"):
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "bad tool", "type": "invalid_request_error", "code": 400}}',
         "bad tool"),
        (b'{"object": "error", "message": "too long", "type": "BadRequestError", "code": 400}',
         "too long"),
        (b'{"error": "model not loaded"}', "model not loaded"),
        (b"<html>502</html>", "The backend answered 400."),
        (b"{}", "The backend answered 400."),
    ],
)  # fmt: skip
def test_a_backends_error_keeps_its_message_and_status(body: bytes, message: str) -> None:
    status, out = error_from_chat(400, body)
    assert (status, json.loads(out)) == (
        400,
        {"type": "error", "error": {"type": "invalid_request_error", "message": message}},
    )
