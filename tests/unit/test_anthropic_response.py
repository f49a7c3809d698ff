"""Anthropic responses, stream events and errors → OpenAI's shapes (pure, no event loop)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nexus_trio import errors
from nexus_trio.dialects.anthropic.errors import translate_error, translate_error_event
from nexus_trio.dialects.anthropic.response import translate_response
from nexus_trio.dialects.anthropic.stream import StreamTranslator
from nexus_trio.upstream.chunks import inspect_chunk
from tests.fake_anthropic import ERROR_TYPES, FakeAnthropic, stream_events


def message(content: list[dict[str, Any]], stop: str | None = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 5,
                  "cache_creation_input_tokens": 2},
    }  # fmt: skip


def test_text_blocks_join_and_usage_counts_every_input_token() -> None:
    body = message([{"type": "text", "text": "Hel"}, {"type": "thinking", "thinking": "hm"},
                    {"type": "text", "text": "lo"}])  # fmt: skip
    out = json.loads(translate_response(json.dumps(body).encode(), created=1700))
    assert out["id"] == "msg_1"
    assert out["object"] == "chat.completion"
    assert (out["created"], out["model"]) == (1700, "claude-x")
    (choice,) = out["choices"]
    assert choice["message"] == {"role": "assistant", "content": "Hello"}
    assert choice["finish_reason"] == "stop"
    assert out["usage"] == {
        "prompt_tokens": 17,
        "completion_tokens": 4,
        "total_tokens": 21,
        "prompt_tokens_details": {"cached_tokens": 5},
    }


def test_tool_use_becomes_tool_calls_with_json_string_arguments() -> None:
    body = message(
        [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, "b"]}}], "tool_use"
    )
    out = json.loads(translate_response(json.dumps(body).encode(), created=0))
    (choice,) = out["choices"]
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert (call["id"], call["type"], call["function"]["name"]) == ("toolu_1", "function", "f")
    assert json.loads(call["function"]["arguments"]) == {"a": [1, "b"]}
    assert choice["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("stop", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
     ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("pause_turn", "stop")],
)  # fmt: skip
def test_stop_reasons(stop: str, finish: str) -> None:
    out = json.loads(translate_response(json.dumps(message([], stop)).encode(), created=0))
    assert out["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("body", [b"<html>", b"{}", b'{"type": "error"}'])
def test_a_body_that_is_no_message_is_a_bad_upstream_response(body: bytes) -> None:
    with pytest.raises(errors.BadUpstreamResponse):
        translate_response(body, created=0)


@pytest.mark.parametrize(("status", "kind"), sorted(ERROR_TYPES.items()))
def test_errors_keep_the_message_and_map_type_and_status(status: int, kind: str) -> None:
    body = {
        "type": "error",
        "error": {"type": kind, "message": "said Anthropic"},
        "request_id": "r",
    }
    client_status, out = translate_error(status, json.dumps(body).encode())
    assert client_status == (503 if status == 529 else status)
    error = json.loads(out)["error"]
    assert error["message"] == "said Anthropic"
    assert error["param"] is None
    assert error["type"]
    assert error["code"]


def test_an_error_that_is_not_anthropic_json_gets_a_generic_message() -> None:
    status, out = translate_error(502, b"<html>bad gateway</html>")
    assert status == 502
    assert json.loads(out)["error"]["message"] == "The Anthropic backend answered 502."
    assert translate_error_event('{"type": "ping"}') is None


def _feed_all(translator: StreamTranslator, events: list[bytes]) -> list[dict[str, Any]]:
    out = b"".join(translator.feed(e.split(b"data: ", 1)[1].strip().decode()) for e in events)
    chunks = [c[6:] for c in out.decode().split("\n\n") if c]
    assert (chunks[-1] == "[DONE]") is translator.done
    return [json.loads(c) for c in chunks if c != "[DONE]"]


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    return FakeAnthropic()._answer(request, "req_1")


def test_a_text_stream_becomes_openai_chunks() -> None:
    translator = StreamTranslator(created=5, include_usage=False)
    events = stream_events(
        _answer({"model": "m", "messages": [{"role": "user", "content": "x"}]}), "m"
    )
    first = translator.feed(events[0].split(b"data: ", 1)[1].strip().decode())
    assert not translator.content_started  # the role chunk is no content (TTFT)
    assert not inspect_chunk(first[6:].decode()).has_content
    chunks = [json.loads(first[6:]), *_feed_all(translator, events[1:])]
    assert translator.content_started
    assert translator.done
    assert not translator.failed
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["created"] == 5 for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Hello from the fake Claude."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)
    assert translator.usage is not None
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (15, 7)


def test_a_tool_stream_with_include_usage() -> None:
    request = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "f"}],
    }
    translator = StreamTranslator(created=5, include_usage=True)
    chunks = _feed_all(translator, stream_events(_answer(request), "m"))
    calls = [
        t for c in chunks if c["choices"] for t in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert calls[0] == {"index": 0, "id": "toolu_req_1", "type": "function",
                        "function": {"name": "f", "arguments": ""}}  # fmt: skip
    assert json.loads("".join(t["function"]["arguments"] for t in calls)) == {"city": "Paris"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 22
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 3}


@pytest.mark.parametrize("model", ["truncate", "stream-error"])
def test_a_cut_or_failed_stream_is_never_done(model: str) -> None:
    translator = StreamTranslator(created=5, include_usage=True)
    request = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    _feed_all(translator, stream_events(_answer(request), model))
    assert not translator.done
    assert translator.failed is (model == "stream-error")


def test_undecodable_event_data_fails_the_stream_and_an_opening_error_is_judged() -> None:
    translator = StreamTranslator(created=0, include_usage=False)
    assert translator.feed("not json") == b""
    assert translator.failed
    event = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    status, body = translator.opening_error(event) or (0, b"")
    assert status == 503
    assert json.loads(body)["error"]["code"] == "overloaded"
