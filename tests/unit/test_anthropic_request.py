"""OpenAI chat requests → Anthropic Messages API requests (pure, no event loop)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_trio import errors
from nexus_trio.dialects.anthropic.request import translate_request
from tests.anthropic_request_rules import problems

TOOLS = [
    {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
    }
]


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "gateway-model")
    raw = json.dumps(body).encode()
    out: dict[str, Any] = json.loads(
        translate_request(raw, model="claude", default_max_tokens=99).body
    )
    return out


def call(call_id: str, arguments: str = "{}") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "f", "arguments": arguments}}


def test_system_and_developer_become_system_and_same_role_turns_merge() -> None:
    out = translate(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "one"},
            {"role": "developer", "content": [{"type": "text", "text": "no emoji"}]},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "ok"},
            {"role": "assistant", "content": "   "},
            {"role": "assistant", "content": "more"},
        ],
        max_completion_tokens=12,
        max_tokens=50,
        temperature=0.5,
        top_p=0.9,
        stop=["X", "Y"],
        user="alice",
        seed=3,
    )
    assert out["model"] == "claude"
    assert out["system"] == [
        {"type": "text", "text": "be brief"},
        {"type": "text", "text": "no emoji"},
    ]
    assert out["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "ok"}, {"type": "text", "text": "more"}],
        },
    ]
    assert (out["max_tokens"], out["temperature"], out["top_p"]) == (12, 0.5, 0.9)
    assert out["stop_sequences"] == ["X", "Y"]
    assert out["metadata"] == {"user_id": "alice"}
    assert "seed" not in out
    assert "stream" not in out
    assert problems(out) is None


def test_defaults_images_and_stream() -> None:
    out = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklG"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://x.test/a.png", "detail": "low"},
                    },
                ],
            }
        ],
        stream=True,
        stop="END",
    )
    assert out["max_tokens"] == 99
    assert out["stream"] is True
    assert out["stop_sequences"] == ["END"]
    assert out["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklG"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
def test_tools_and_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    extra = {} if choice is None else {"tool_choice": choice}
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    out = translate(messages=[{"role": "user", "content": "hi"}], tools=TOOLS, **extra)
    assert out["tools"] == [{"name": "f", "input_schema": TOOLS[0]["function"]["parameters"]}]
    assert out.get("tool_choice") == expected
    assert problems(out) is None


def test_tool_calls_and_results_round_trip() -> None:
    out = translate(
        messages=[
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [call("a", '{"x": 1}'), call("b")],
            },
            {"role": "tool", "tool_call_id": "a", "content": "A"},
            {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "B"}]},
            {"role": "user", "content": "thanks"},
        ],
        tools=TOOLS,
    )
    assistant, results = out["messages"][1:]
    assert assistant["content"] == [
        {"type": "text", "text": "calling"},
        {"type": "tool_use", "id": "a", "name": "f", "input": {"x": 1}},
        {"type": "tool_use", "id": "b", "name": "f", "input": {}},
    ]
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": "A"}]},
        {"type": "tool_result", "tool_use_id": "b", "content": [{"type": "text", "text": "B"}]},
        {"type": "text", "text": "thanks"},
    ]
    assert problems(out) is None


HELLO = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO, "n": 2}, "n"),
        ({"messages": HELLO, "logprobs": True}, "logprobs"),
        ({"messages": HELLO, "top_logprobs": 2}, "top_logprobs"),
        ({"messages": HELLO, "response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": HELLO, "response_format": {"type": "json_schema"}}, "response_format"),
        ({"messages": HELLO, "audio": {"voice": "x"}}, "audio"),
        ({"messages": HELLO, "modalities": ["text", "audio"]}, "modalities"),
        ({"messages": HELLO, "temperature": 1.5}, "temperature"),
        (
            {"messages": HELLO, "tools": [{"type": "custom", "function": {"name": "f"}}]},
            "tools[0].type",
        ),
        ({"messages": HELLO, "tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": [{"role": "assistant", "content": "hi"}, *HELLO]}, "messages[0]"),
        ({"messages": [{"role": "system", "content": "only"}]}, "messages"),
        (
            {"messages": [*HELLO, {"role": "tool", "tool_call_id": "x", "content": "r"}]},
            "messages[1].tool_call_id",
        ),
        ({"messages": [*HELLO, {"role": "wizard", "content": "r"}]}, "messages[1]"),
        (
            {
                "messages": [*HELLO, {"role": "assistant", "tool_calls": [call("a", "[1]")]}],
                "tools": TOOLS,
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            {
                "messages": [*HELLO, {"role": "assistant", "tool_calls": [call("a")]}, *HELLO],
                "tools": TOOLS,
            },
            "messages[2]",
        ),
        ({"messages": [*HELLO, {"role": "assistant", "tool_calls": [call("a")]}]}, "tools"),
    ],
)
def test_what_anthropic_cannot_do_is_refused_naming_the_field(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(errors.InvalidValue) as info:
        translate(**body)
    assert info.value.param == param
    assert info.value.status == 400


# --- property: whatever is translated, Anthropic accepts -----------------------------------

_TEXT = st.sampled_from(["", " ", "hi", "more text", "\n"])
_PART = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, _TEXT),
    st.sampled_from(
        [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
            {"type": "image_url", "image_url": {"url": "https://x.test/i.jpg"}},
        ]
    ),
)
_CONTENT = st.one_of(st.none(), _TEXT, st.lists(_PART, max_size=3))
_IDS = st.sampled_from(["c1", "c2", "c3"])
_MESSAGE = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "developer"]), "content": _CONTENT}
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": st.one_of(st.none(), _TEXT)},
        optional={
            "tool_calls": st.lists(st.builds(call, _IDS), max_size=2, unique_by=lambda c: c["id"])
        },
    ),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": _IDS, "content": _TEXT}),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_MESSAGE, min_size=1, max_size=8), tools=st.booleans())
def test_random_message_lists_translate_to_requests_anthropic_accepts(
    messages: list[dict[str, Any]], tools: bool
) -> None:
    """Either the gateway refuses (400 naming a field), or Anthropic's rules all hold."""
    extra = {"tools": TOOLS} if tools else {}
    try:
        out = translate(messages=[*HELLO, *messages], **extra)
    except errors.InvalidValue as exc:
        refused: errors.InvalidValue | None = exc
    else:
        refused = None
        assert problems(out) is None, (messages, out)
    assert refused is None or refused.param


@st.composite
def _conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Well-formed OpenAI conversations: tool results right after their calls."""
    messages: list[dict[str, Any]] = (
        [{"role": "system", "content": "sys"}] if draw(st.booleans()) else []
    )
    messages.append(
        {"role": "user", "content": draw(st.sampled_from(["q", [{"type": "text", "text": "q"}]]))}
    )
    for round_ in range(draw(st.integers(0, 4))):
        count = draw(st.integers(0, 2))
        ids = [f"r{round_}c{i}" for i in range(count)]
        reply: dict[str, Any] = {
            "role": "assistant",
            "content": draw(st.sampled_from([None, "", "a"])),
        }
        if ids:
            reply["tool_calls"] = [call(i, '{"k": "v"}') for i in ids]
        elif not reply["content"]:
            reply["content"] = "a"
        messages.append(reply)
        messages += [{"role": "tool", "tool_call_id": i, "content": "r"} for i in ids]
        if not ids or draw(st.booleans()):
            messages.append({"role": "user", "content": "next"})
    return messages


@settings(max_examples=300)
@given(messages=_conversations())
def test_well_formed_conversations_always_translate(messages: list[dict[str, Any]]) -> None:
    out = translate(messages=messages, tools=TOOLS)
    assert problems(out) is None, (messages, out)
    roles = [turn["role"] for turn in out["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))
