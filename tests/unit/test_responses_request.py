"""Responses requests → chat-completions requests (docs/responses-api.md#requests): every
mapping, every dropped field, the refusals naming their field (pure, no event loop)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nexus_trio import errors
from nexus_trio.dialects.responses import ResponsesRequest, chat_request
from tests.unit.responses_shapes import SHELL, WEB_SEARCH, codex_body, encode


def translate(body: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], ResponsesRequest]:
    chat, kept = chat_request(encode(body), **kwargs)
    json.dumps(chat)  # plain JSON-able values only
    return chat, kept


def refusal(body: dict[str, Any] | bytes) -> errors.InvalidRequest:
    with pytest.raises(errors.InvalidRequest) as caught:
        chat_request(body if isinstance(body, bytes) else encode(body))
    assert caught.value.status == 400
    return caught.value


def test_a_codex_request_keeps_its_messages_and_function_tools() -> None:
    chat, kept = translate(codex_body())
    assert chat["messages"] == [
        {"role": "system", "content": "<permissions>sandboxed</permissions>"},
        {"role": "system", "content": "<collaboration_mode/>"},
        {"role": "user", "content": "<environment_context/>"},
        {"role": "user", "content": "say hi"},
    ]
    assert chat["model"] == "local-model"
    assert (chat["stream"], chat["stream_options"]) == (True, {"include_usage": True})
    names = [tool["function"]["name"] for tool in chat["tools"]]
    assert names == ["shell", "update_plan", "mcp__files__read"]  # custom and web_search left out
    assert chat["tools"][0] == {
        "type": "function",
        "function": {key: SHELL[key] for key in ("name", "description", "parameters", "strict")},
    }
    assert chat["tools"][2]["function"]["strict"] is True
    assert (chat["tool_choice"], chat["parallel_tool_calls"]) == ("auto", True)
    for dropped in (
        "include",
        "prompt_cache_key",
        "client_metadata",
        "store",
        "reasoning",
        "input",
        "reasoning_effort",
        "max_tokens",
    ):
        assert dropped not in chat
    assert kept.store is False
    assert kept.reasoning == {"summary": "auto"}
    assert kept.tool_namespaces == {"mcp__files__read": ["mcp__files__", "read"]}
    assert [tool["name"] for tool in kept.tools] == names
    assert kept.input_messages == chat["messages"]


def test_string_input_instructions_and_sampling_options() -> None:
    body = {
        "model": "m",
        "input": "hello",
        "instructions": "Be brief.",
        "max_output_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
        "metadata": {"k": "v"},
        "previous_response_id": "resp_prev",
        "truncation": "auto",
        "service_tier": "flex",
        "future_field": {"x": [1]},
    }
    chat, kept = translate(body)
    assert chat == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
    }
    assert (kept.instructions, kept.max_output_tokens, kept.metadata) == (
        "Be brief.",
        64,
        {"k": "v"},
    )
    assert (kept.previous_response_id, kept.store, kept.tool_choice) == ("resp_prev", True, "auto")
    assert kept.input_messages == [{"role": "user", "content": "hello"}]  # no instructions
    assert kept.text == {"format": {"type": "text"}}
    assert kept.parallel_tool_calls is True


def test_history_goes_between_the_instructions_and_the_input() -> None:
    history = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "1"}]
    chat, kept = translate({"input": "two", "instructions": "Count."}, history=history)
    assert [m["content"] for m in chat["messages"]] == ["Count.", "one", "1", "two"]
    assert kept.input_messages == [{"role": "user", "content": "two"}]


def test_function_calls_join_their_assistant_message_and_outputs_become_tool_messages() -> None:
    body = codex_body(
        input=[
            {"role": "user", "content": "list files"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Looking.", "annotations": []}],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "shell",
                "arguments": '{"command":["ls"]}',
            },
            {
                "type": "function_call",
                "call_id": "c2",
                "name": "read",
                "namespace": "mcp__files__",
                "arguments": "",
            },
            {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [
                    {"type": "input_text", "text": "text of a"},
                    {"type": "input_image", "image_url": "https://x/y.png"},
                ],
            },
            {"type": "function_call", "call_id": "c3", "name": "update_plan", "arguments": "{}"},
        ]
    )
    messages = translate(body)[0]["messages"]
    assert messages == [
        {"role": "user", "content": "list files"},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "shell", "arguments": '{"command":["ls"]}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "mcp__files__read", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
        {"role": "tool", "tool_call_id": "c2", "content": "text of a"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c3",
                    "type": "function",
                    "function": {"name": "update_plan", "arguments": "{}"},
                }
            ],
        },
    ]


def test_content_parts_map_to_chat_parts() -> None:
    image = "data:image/png;base64,iVBORw0KGgo="
    body = {
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": image, "detail": "low"},
                    {"type": "input_image", "image_url": "https://x/y.png", "detail": "original"},
                    {"type": "input_audio", "input_audio": {"data": "..."}},
                ],
            },
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
            {
                "role": "system",
                "content": [
                    {"type": "input_text", "text": "a"},
                    {"type": "input_text", "text": "b"},
                ],
            },
            {"role": "user", "content": []},
        ]
    }
    assert translate(body)[0]["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
        },
        {"role": "assistant", "content": "No."},
        {
            "role": "system",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        },
        {"role": "user", "content": ""},
    ]


def test_unknown_types_and_fields_are_left_out_never_refused() -> None:
    body = codex_body(
        input=[
            {"type": "computer_call_output", "call_id": 7, "output": {"x": 1}},
            {"type": "message", "role": "user", "content": "hi", "phase": "final_answer"},
        ],
        tools=[
            {"type": "future_tool", "tools": 5, "name": ["x"]},
            WEB_SEARCH,
            {"type": "mcp", "server_label": "s"},
            {"type": "code_interpreter"},
        ],
        brand_new_option=True,
    )
    chat, kept = translate(body)
    assert chat["messages"] == [{"role": "user", "content": "hi"}]
    assert "tools" not in chat
    assert "tool_choice" not in chat
    assert "parallel_tool_calls" not in chat
    assert kept.tools == []


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", "none"),
        ("required", "required"),
        (
            {"type": "function", "name": "shell"},
            {"type": "function", "function": {"name": "shell"}},
        ),
        (
            {"type": "function", "name": "read"},
            {"type": "function", "function": {"name": "mcp__files__read"}},
        ),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    chat, kept = translate(codex_body(tool_choice=choice))
    assert chat["tool_choice"] == expected
    assert kept.tool_choice == choice


def test_allowed_tools_narrow_the_tools() -> None:
    choice = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "shell"}, {"type": "web_search"}],
    }
    chat, kept = translate(codex_body(tool_choice=choice))
    assert [tool["function"]["name"] for tool in chat["tools"]] == ["shell"]
    assert chat["tool_choice"] == "required"
    assert len(kept.tools) == 3  # the echo keeps what was given


@pytest.mark.parametrize(
    "kind",
    [
        "web_search_preview",
        "file_search",
        "computer_use_preview",
        "image_generation",
        "code_interpreter",
        "mcp",
        "custom",
    ],
)
def test_a_tool_choice_forcing_a_built_in_tool_is_refused_naming_it(kind: str) -> None:
    error = refusal(codex_body(tool_choice={"type": kind, "name": "x", "server_label": "s"}))
    assert error.param == "tool_choice"
    assert repr(kind) in error.message


def test_requiring_a_tool_call_with_only_built_in_tools_is_refused() -> None:
    assert refusal(codex_body(tools=[WEB_SEARCH], tool_choice="required")).param == "tool_choice"
    chat, _ = translate(codex_body(tools=[WEB_SEARCH], tool_choice="auto"))
    assert "tool_choice" not in chat


def test_namespaced_names_stay_unique() -> None:
    tools = [
        {"type": "namespace", "name": "crm", "tools": [{"type": "function", "name": "find"}]},
        {"type": "function", "name": "crm__find"},
        {"type": "namespace", "name": "crm", "tools": [{"type": "function", "name": "find"}]},
    ]
    chat, kept = translate(codex_body(tools=tools))
    names = [tool["function"]["name"] for tool in chat["tools"]]
    assert names == ["crm__find_2", "crm__find", "crm__find_3"]
    assert kept.tool_namespaces == {"crm__find_2": ["crm", "find"], "crm__find_3": ["crm", "find"]}
    assert "parameters" not in chat["tools"][0]["function"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            {
                "format": {
                    "type": "json_schema",
                    "name": "r",
                    "schema": {"type": "object"},
                    "strict": True,
                    "description": "d",
                },
                "verbosity": "low",
            },
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "r",
                    "schema": {"type": "object"},
                    "strict": True,
                    "description": "d",
                },
            },
        ),
        ({"format": {"type": "json_object"}}, {"type": "json_object"}),
        ({"format": {"type": "text"}}, None),
        ({"verbosity": "high"}, None),
    ],
)
def test_text_format_becomes_response_format(text: Any, expected: Any) -> None:
    chat, kept = translate({"input": "x", "text": text})
    assert chat.get("response_format") == expected
    assert kept.text == text


def test_reasoning_effort_is_passed_on() -> None:
    chat, kept = translate({"input": "x", "reasoning": {"effort": "high", "summary": "auto"}})
    assert chat["reasoning_effort"] == "high"
    assert kept.reasoning == {"effort": "high", "summary": "auto"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}
                ]
            },
            "input[0].content[0].file_id",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "x"},
                            {"type": "input_file", "file_id": "f"},
                        ],
                    }
                ]
            },
            "input[0].content[1]",
        ),
        (
            {
                "input": [
                    {
                        "role": "assistant",
                        "content": [{"type": "input_image", "image_url": "https://x"}],
                    }
                ]
            },
            "input[0].content[0]",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"role": "critic", "content": "x"}]}, "input[0].role"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
            "input[0].content[0].text",
        ),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0]"),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": "x", "prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": "x", "temperature": "hot"}, "temperature"),
        ({"input": "x", "tools": [{"type": "function"}]}, "tools[0]"),
        (
            {
                "input": "x",
                "tools": [
                    {"type": "namespace", "name": "n", "tools": [{"type": "function", "name": 3}]}
                ],
            },
            "tools[0].tools[0].name",
        ),
        ({"input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"input": "x", "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name"),
        (
            {"input": "x", "text": {"format": {"type": "json_schema", "name": "r"}}},
            "text.format.schema",
        ),
        ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        (
            {"input": "x", "text": {"format": {"type": "json_schema", "name": 1}}},
            "text.format.name",
        ),
        ({"input": "x", "reasoning": {"effort": 3}}, "reasoning.effort"),
        ({"input": []}, "input"),
    ],
)
def test_malformed_or_impossible_requests_are_refused_naming_the_field(
    body: dict[str, Any], param: str
) -> None:
    error = refusal(body)
    assert isinstance(error, errors.InvalidValue)
    assert error.param == param
    assert f"'{param}'" in error.message


def test_bodies_that_are_not_a_json_object() -> None:
    assert isinstance(refusal(b"{not json"), errors.InvalidJSON)
    error = refusal(b"[1, 2]")
    assert (type(error), error.param) == (errors.InvalidValue, None)
    deep = b'{"input": "x", "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    assert isinstance(refusal(deep), errors.InvalidJSON)


def test_thousands_of_colliding_namespace_tools_get_unique_names_and_a_bound() -> None:
    function = {"type": "function", "name": "run", "parameters": {"type": "object"}}
    namespace = {"type": "namespace", "name": "ns", "tools": [function] * 4096}
    chat, _ = chat_request(encode({"model": "m", "input": "hi", "tools": [namespace]}))
    names = [tool["function"]["name"] for tool in chat["tools"]]
    assert len(set(names)) == 4096
    assert names[:3] == ["ns__run", "ns__run_2", "ns__run_3"]
    assert names[-1] == "ns__run_4096"
    too_many = {**namespace, "tools": [function] * 4097}
    with pytest.raises(errors.InvalidValue) as refused:
        chat_request(encode({"model": "m", "input": "hi", "tools": [too_many]}))
    assert refused.value.param == "tools"
