"""One system message, first: for a backend whose chat template refuses a system message
anywhere else (``[[backends]] merge_system_messages``, docs/proxying.md#request-body).

Claude Code's requests, translated from the Messages API, carry a ``system`` message after the
first user turn, and other clients interleave them too; some models' Jinja chat templates
(llama.cpp) refuse that. For such a backend every ``system`` message's text is joined, in
order and with a blank line between, into one ``system`` message at the start; every other
message keeps its order. A body with at most one system message, first, is sent unchanged.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["merged_system"]

_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_MESSAGES = msgspec.json.Decoder(list[dict[str, Any]])
_ENCODER = msgspec.json.Encoder()
_JOINER = "\n\n"


def merged_system(body: bytes) -> bytes:
    """``body`` (a chat request, validated) with its system messages merged into one, first;
    ``body`` itself when there is nothing to merge, or when its messages are nested too deeply
    to read here (the backend decides)."""
    try:
        return _merged(body)
    except (msgspec.DecodeError, RecursionError):
        return body


def _merged(body: bytes) -> bytes:
    top = _TOP.decode(body)
    raw = top.get("messages")
    if raw is None:
        return body
    messages = _MESSAGES.decode(raw)
    system = [index for index, message in enumerate(messages) if message.get("role") == "system"]
    if not system or system == [0]:
        return body
    texts = [text for index in system if (text := _text(messages[index].get("content")))]
    rest = [message for message in messages if message.get("role") != "system"]
    top["messages"] = msgspec.Raw(
        _ENCODER.encode([{"role": "system", "content": _JOINER.join(texts)}, *rest])
    )
    return _ENCODER.encode(top)


def _text(content: object) -> str:
    """A system message's text: its string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return _JOINER.join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""
