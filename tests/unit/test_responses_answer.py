"""Chat-completions answers → Response objects, stored responses → conversation messages, and
the error envelope on /v1/responses (docs/responses-api.md#responses,
docs/responses-api.md#errors); checked against the official openai SDK's types and clients."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.responses import Response

from nexus_trio import errors
from nexus_trio.dialects.responses import (
    ResponsesRequest,
    chat_request,
    error_body,
    output_messages,
    response_object,
)
from tests.unit.responses_shapes import USAGE, codex_body, completion, encode, sdk_client

CODEX = chat_request(encode(codex_body()))[1]


def answer(chat: bytes, request: ResponsesRequest = CODEX) -> dict[str, Any]:
    body = response_object(
        chat, request=request, model="asked-model", response_id="resp_abc", created_at=1700
    )
    Response.model_validate_json(body)  # every field the SDK requires, of the right type
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def test_a_text_answer_with_usage_and_the_echoed_request() -> None:
    out = answer(completion({"content": "Hi there."}, usage=USAGE))
    assert (out["id"], out["object"], out["created_at"]) == ("resp_abc", "response", 1700)
    assert (out["model"], out["status"], out["error"], out["incomplete_details"]) == (
        "asked-model",
        "completed",
        None,
        None,
    )
    assert out["output"] == [
        {
            "type": "message",
            "id": "msg_abc_0",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi there.", "annotations": []}],
        }
    ]
    assert out["usage"] == {
        "input_tokens": 40,
        "input_tokens_details": {"cached_tokens": 32, "cache_write_tokens": 0},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 52,
    }
    assert out["tools"] == CODEX.tools
    assert (out["tool_choice"], out["parallel_tool_calls"], out["store"]) == ("auto", True, False)
    assert (out["reasoning"], out["text"]) == ({"summary": "auto"}, {"format": {"type": "text"}})
    assert openai.types.responses.Response.model_validate(out).output_text == "Hi there."


def test_parallel_tool_calls_become_function_call_items() -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "shell", "arguments": '{"command":["ls"]}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "mcp__files__read", "arguments": ""},
        },
    ]
    out = answer(completion({"content": None, "tool_calls": calls}, "tool_calls"))
    assert out["output"] == [
        {
            "type": "function_call",
            "id": "fc_abc_0",
            "call_id": "call_1",
            "name": "shell",
            "arguments": '{"command":["ls"]}',
            "status": "completed",
        },
        {
            "type": "function_call",
            "id": "fc_abc_1",
            "call_id": "call_2",
            "name": "read",
            "namespace": "mcp__files__",
            "arguments": "{}",
            "status": "completed",
        },
    ]
    assert out["usage"] is None  # the backend sent none


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_output_becomes_a_reasoning_item_before_the_message(field: str) -> None:
    out = answer(completion({"content": "4", field: "2+2 is 4"}))
    assert [item["type"] for item in out["output"]] == ["reasoning", "message"]
    assert out["output"][0] == {
        "type": "reasoning",
        "id": "rs_abc_0",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "2+2 is 4"}],
    }
    assert out["output"][1]["id"] == "msg_abc_1"


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_a_cut_answer_is_incomplete(finish: str, reason: str) -> None:
    out = answer(completion({"content": "Once upon"}, finish))
    assert (out["status"], out["incomplete_details"]) == ("incomplete", {"reason": reason})
    assert out["output"][0]["status"] == "incomplete"


def test_an_empty_answer_still_has_a_message_and_a_refusal_is_text() -> None:
    assert answer(completion({"content": None}))["output"][0]["content"][0]["text"] == ""
    assert answer(completion({"content": None, "refusal": "I can't."}))["output"][0]["content"] == [
        {"type": "output_text", "text": "I can't.", "annotations": []}
    ]


@pytest.mark.parametrize(
    "chat", [b"<html>bad gateway</html>", b'{"choices": []}', b'{"choices": [{"delta": {}}]}']
)
def test_what_is_not_a_chat_completion_is_a_bad_upstream_response(chat: bytes) -> None:
    with pytest.raises(errors.BadUpstreamResponse):
        response_object(chat, request=CODEX, model="m", response_id="resp_1", created_at=0)


def test_the_sdk_reads_the_answer_through_responses_create() -> None:
    body = response_object(
        completion({"content": "Hello!"}, usage=USAGE),
        request=chat_request(encode({"model": "m", "input": "hi"}))[1],
        model="m",
        response_id="resp_1",
        created_at=5,
    )
    response = sdk_client(200, body).responses.create(model="m", input="hi")
    assert (response.id, response.output_text, response.status) == ("resp_1", "Hello!", "completed")
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 32


def test_output_messages_continue_the_conversation() -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "mcp__files__read", "arguments": '{"p":1}'},
        }
    ]
    stored = response_object(
        completion({"content": "Reading.", "reasoning_content": "hm", "tool_calls": calls}),
        request=CODEX,
        model="m",
        response_id="resp_1",
        created_at=0,
    )
    added = output_messages(stored)
    assert added == [{"role": "assistant", "content": "Reading.", "tool_calls": calls}]
    follow_up = {
        "input": [{"type": "function_call_output", "call_id": "call_1", "output": "ok"}],
        "previous_response_id": "resp_1",
        "tools": codex_body()["tools"],
    }
    chat, _ = chat_request(encode(follow_up), history=[*CODEX.input_messages, *added])
    assert chat["messages"][-2:] == [
        added[0],
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ]
    assert chat["messages"][-2]["tool_calls"][0]["function"]["name"] in {
        tool["function"]["name"] for tool in chat["tools"]
    }


def test_output_messages_of_calls_only_text_only_and_nothing() -> None:
    only_calls = {
        "output": [
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", "id": "fc_1"}
        ]
    }
    assert output_messages(encode(only_calls)) == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        }
    ]
    empty_message = {
        "output": [{"type": "message", "content": [{"type": "output_text", "text": ""}]}]
    }
    assert output_messages(encode(empty_message)) == [{"role": "assistant", "content": ""}]
    assert output_messages(encode({"output": [{"type": "reasoning", "summary": []}]})) == []
    with pytest.raises(errors.BadUpstreamResponse):
        output_messages(b'{"id": "resp_1"}')


@pytest.mark.parametrize(
    ("status", "code", "kind", "sdk_error"),
    [
        (400, "invalid_value", "invalid_request_error", openai.BadRequestError),
        (401, "invalid_api_key", "authentication_error", openai.AuthenticationError),
        (403, "model_not_allowed", "invalid_request_error", openai.PermissionDeniedError),
        (404, "model_not_found", "invalid_request_error", openai.NotFoundError),
        (429, "budget_exceeded", "insufficient_quota", openai.RateLimitError),
        (429, "slow_down", "rate_limit_error", openai.RateLimitError),
        (503, "no_available_backend", "service_unavailable", openai.InternalServerError),
        (502, None, "api_error", openai.InternalServerError),
    ],
)
def test_error_bodies_are_openai_envelopes_the_sdk_raises_on(
    status: int, code: str | None, kind: str, sdk_error: type[openai.APIStatusError]
) -> None:
    got_status, body = error_body(status, code, "Something is wrong.")
    assert got_status == status
    assert json.loads(body) == {
        "error": {"message": "Something is wrong.", "type": kind, "param": None, "code": code}
    }
    with pytest.raises(sdk_error) as caught:
        sdk_client(status, body).responses.create(model="m", input="hi")
    assert (caught.value.status_code, caught.value.code) == (status, code)
    assert caught.value.message.endswith(f"{status} - Something is wrong.")
