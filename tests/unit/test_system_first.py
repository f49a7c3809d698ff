"""``merge_system_messages``: every system message merged into one, first
(docs/proxying.md#request-body)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from nexus_trio.dialects.system_first import merged_system


def chat(*messages: dict[str, Any]) -> bytes:
    return msgspec.json.encode({"model": "m", "stream": True, "messages": list(messages)})


def test_claude_codes_later_system_message_joins_the_first() -> None:
    body = chat(
        {"role": "system", "content": "one"},
        {"role": "user", "content": "hi"},
        {
            "role": "system",
            "content": [{"type": "text", "text": "two"}, {"type": "text", "text": "three"}],
        },
        {"role": "assistant", "content": "hello"},
    )
    assert msgspec.json.decode(merged_system(body)) == {
        "model": "m",
        "stream": True,
        "messages": [
            {"role": "system", "content": "one\n\ntwo\n\nthree"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
        ],
    }


def test_a_system_message_after_the_first_turn_alone_moves_first() -> None:
    body = chat({"role": "user", "content": "hi"}, {"role": "system", "content": "late"})
    merged = msgspec.json.decode(merged_system(body))["messages"]
    assert merged == [{"role": "system", "content": "late"}, {"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "hi"}],
        [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
    ],
)
def test_a_body_with_nothing_to_merge_is_sent_byte_for_byte(messages: list[dict[str, Any]]) -> None:
    body = chat(*messages)
    assert merged_system(body) is body


def test_messages_too_deep_to_read_here_are_sent_as_they_are() -> None:
    deep = "[" * 5000 + "]" * 5000
    body = chat({"role": "user", "content": "hi"}, {"role": "system", "content": "late"})
    body = body[:-2] + b', {"role": "user", "content": "x", "extra": ' + deep.encode() + b"}]}"
    assert merged_system(body) is body
