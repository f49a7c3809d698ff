"""The Messages API request → chat completions, and what count_tokens counts
(docs/messages-api.md#requests, docs/messages-api.md#counting-tokens)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nexus_trio import errors
from nexus_trio.dialects.messages import (
    chat_request,
    chat_text_for_tokenizer,
    count_tokens_estimate,
    message_response,
)
from tests.unit.messages_fixtures import CLAUDE_CODE_BODY, encoded, sdk_client


def translated(**fields: Any) -> dict[str, Any]:
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    return chat_request(encoded(body | fields))


def test_claude_codes_request_translates_field_by_field() -> None:
    out = chat_request(encoded(CLAUDE_CODE_BODY))
    assert out == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {"role": "system", "content": "x-anthropic-billing-header: cc_version=2.1.197\n\n"
                                          "You are Claude Code.\n\nUse the tools."},
            {"role": "user", "content": "<system-reminder>ctx</system-reminder>\n\nsay hi"},
            {"role": "system", "content": "gitStatus: clean"},
        ],
        "tools": [
            {"type": "function", "function": {
                "name": "Bash", "description": "Run a command.",
                "parameters": CLAUDE_CODE_BODY["tools"][0]["input_schema"]}},
            {"type": "function", "function": {
                "name": "WebSearch", "description": "Search.",
                "parameters": CLAUDE_CODE_BODY["tools"][1]["input_schema"]}},
        ],
    }  # fmt: skip


def test_what_the_official_sdk_sends_translates_and_its_answer_parses() -> None:
    seen: list[bytes] = []
    chat = {
        "id": "c1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Sunny."},
            }
        ],
    }
    client = sdk_client(200, message_response(encoded(chat), model="m"), seen=seen)
    message = client.messages.create(
        model="m",
        max_tokens=50,
        system="Be brief.",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[{"name": "weather", "input_schema": {"type": "object", "properties": {}}}],
        tool_choice={"type": "tool", "name": "weather"},
        stop_sequences=["END"],
        cache_control={"type": "ephemeral"},
    )
    assert (message.content[0].type, message.stop_reason) == ("text", "end_turn")
    out = chat_request(seen[0])
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert (out["stop"], out["max_tokens"]) == (["END"], 50)
    assert "cache_control" not in out


def test_a_tool_round_trip_puts_tool_messages_right_after_the_assistant_turn() -> None:
    messages = [
        {"role": "user", "content": "Read both"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xx"},
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a"}},
            {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "text", "text": "and hurry"},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "A"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
             "content": [{"type": "text", "text": "no such"}, {"type": "text", "text": "file"}]},
        ]},
    ]  # fmt: skip
    out = translated(messages=messages)["messages"]
    assert out[1:] == [
        {"role": "assistant", "content": "Reading.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "Read", "arguments": '{"path": "a"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "Read", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "A"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "no such\n\nfile"},
        {"role": "user", "content": "and hurry"},
    ]  # fmt: skip


def test_an_assistant_turn_of_tool_calls_only_has_null_content() -> None:
    turn = {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                              "input": {"a": [1]}}]}  # fmt: skip
    out = translated(messages=[{"role": "user", "content": "go"}, turn])["messages"][1]
    assert out["content"] is None
    assert json.loads(out["tool_calls"][0]["function"]["arguments"]) == {"a": [1]}


def test_images_become_image_url_parts_and_tool_result_images_follow_the_tool_messages() -> None:
    png = {"type": "base64", "media_type": "image/png", "data": "iVBOR"}
    messages = [
        {"role": "user", "content": [
            {"type": "image", "source": png},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
            {"type": "text", "text": "what?"},
        ]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "shot",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "text", "text": "taken"}, {"type": "image", "source": png}]}]},
    ]  # fmt: skip
    out = translated(messages=messages)["messages"]
    data_url = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}
    assert out[0]["content"] == [
        data_url,
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
        {"type": "text", "text": "what?"},
    ]
    assert out[2:] == [
        {"role": "tool", "tool_call_id": "t", "content": "taken"},
        {"role": "user", "content": [data_url]},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "f"},
         {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
        ({"type": "auto", "disable_parallel_tool_use": True},
         {"tool_choice": "auto", "parallel_tool_calls": False}),
        ({"type": "any", "disable_parallel_tool_use": False}, {"tool_choice": "required"}),
    ],
)  # fmt: skip
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    out = translated(tools=tools, tool_choice=choice)
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


SERVER_TOOLS = [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
]


def test_server_tools_are_left_out_and_custom_ones_kept() -> None:
    custom = {"type": "custom", "name": "f", "input_schema": {"type": "object"}}
    out = translated(tools=[*SERVER_TOOLS, custom], tool_choice={"type": "auto"})
    assert out["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object"}}}]  # fmt: skip
    alone = translated(tools=SERVER_TOOLS, tool_choice={"type": "auto"})
    assert "tools" not in alone
    assert "tool_choice" not in alone


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        (SERVER_TOOLS, {"type": "tool", "name": "web_search"}, "tool_choice.name"),
        (SERVER_TOOLS, {"type": "tool", "name": "nope"}, "tool_choice.name"),
        (SERVER_TOOLS, {"type": "tool"}, "tool_choice.name"),
        (SERVER_TOOLS, {"type": "any"}, "tool_choice"),
        (SERVER_TOOLS, {"type": "sometimes"}, "tool_choice.type"),
        ([{"name": "f"}], {"type": "auto"}, "tools[0].input_schema"),
    ],
)
def test_tool_choices_that_cannot_be_honoured_are_refused(
    tools: list[dict[str, Any]], choice: dict[str, Any], param: str
) -> None:
    with pytest.raises(errors.InvalidValue) as caught:
        translated(tools=tools, tool_choice=choice)
    assert caught.value.param == param


def test_sampling_fields() -> None:
    out = translated(temperature=0.5, top_p=0.9, top_k=40, stop_sequences=["\n\nHuman:", "END"])
    assert {k: out[k] for k in ("temperature", "top_p", "top_k", "stop", "max_tokens")} == {
        "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop": ["\n\nHuman:", "END"],
        "max_tokens": 100,
    }  # fmt: skip
    plain = translated(stream=False)
    assert set(plain) == {"model", "messages", "max_tokens"}


def test_fields_with_no_equivalent_and_unknown_fields_are_accepted_and_dropped() -> None:
    dropped = {
        "metadata": {"user_id": "u"}, "thinking": {"type": "enabled", "budget_tokens": 2000},
        "context_management": {"edits": []}, "output_config": {"effort": "low"},
        "service_tier": "auto", "container": "c", "mcp_servers": [{"type": "url", "url": "u"}],
        "a_field_from_next_year": {"x": 1},
    }  # fmt: skip
    assert translated(**dropped) == translated()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"messages": []}, "model"),
        ({"model": 5, "messages": []}, "model"),
        ({"model": "m", "messages": {}}, "messages"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": [{"type": "document"}]}]},
         "messages[0].content[0].type"),
        ({"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {
            "type": "file", "file_id": "f"}}]}]}, "messages[0].content[0].source.type"),
        ({"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t",
            "name": "f", "input": {}}]}]}, "messages[0].content[0].type"),
        ({"model": "m", "messages": [{"role": "assistant", "content": [{"type": "tool_use",
            "id": "t", "name": "f", "input": [1]}]}]}, "messages[0].content[0].input"),
        ({"model": "m", "messages": [{"role": "system", "content": [{"type": "image", "source": {
            "type": "url", "url": "https://x.test"}}]}]}, "messages[0].content[0].type"),
        ({"model": "m", "messages": [], "max_tokens": "many"}, "max_tokens"),
        ({"model": "m", "messages": [], "system": [{"type": "image"}]}, "system[0].type"),
    ],
)  # fmt: skip
def test_malformed_requests_are_400s_naming_the_field(body: Any, param: str | None) -> None:
    with pytest.raises(errors.InvalidValue) as caught:
        chat_request(encoded(body))
    assert caught.value.param == param
    assert caught.value.status == 400


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "m"',
        b'{"model": "m", "messages": [], "tools": [{"name": "f", "input_schema": {"a": %s}}]}'
        % DEEP,
        b'{"model": "m", "messages": [{"role": "assistant", "content": [{"type": "tool_use", '
        b'"id": "t", "name": "f", "input": {"a": %s}}]}]}' % DEEP,
    ],
)
def test_bodies_that_are_not_json_or_too_deep_are_invalid_json(body: bytes) -> None:
    with pytest.raises(errors.InvalidJSON):
        chat_request(body)


def test_the_tokenizer_text_is_what_the_backend_is_sent() -> None:
    body = {
        "model": "m",
        "system": "S",
        "messages": [
            {"role": "user", "content": "U"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "not sent", "signature": "s"},
                {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                          "content": "R"}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}, SERVER_TOOLS[0]],
    }  # fmt: skip
    text = chat_text_for_tokenizer(encoded(body))
    assert text == ('S\n\nU\n\nf\n\n{"a": 1}\n\nR\n\n{"name":"f","parameters":{"type":"object"}}')
    assert count_tokens_estimate(encoded(body)) == -(-len(text) // 4)


@pytest.mark.parametrize(("chars", "tokens"), [(1, 1), (4, 1), (5, 2), (8, 2), (9, 3)])
def test_the_estimate_is_characters_over_four_rounded_up(chars: int, tokens: int) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * chars}]}
    assert count_tokens_estimate(encoded(body)) == tokens


def test_count_tokens_refuses_what_messages_refuses() -> None:
    with pytest.raises(errors.InvalidValue) as caught:
        count_tokens_estimate(encoded({"model": "m", "messages": [{"role": "bot", "content": ""}]}))
    assert caught.value.param == "messages[0].role"


def test_at_most_4096_tools_are_translated() -> None:
    tool = {"name": "run", "input_schema": {"type": "object"}}
    assert len(translated(tools=[tool] * 4096)["tools"]) == 4096
    with pytest.raises(errors.InvalidValue) as refused:
        translated(tools=[tool] * 4097)
    assert refused.value.param == "tools"
