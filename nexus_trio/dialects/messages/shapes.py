"""What a Messages API request carries, decoded as a view (docs/messages-api.md#requests).

Only the fields the translation reads are declared; every other field (``metadata``,
``thinking``, ``cache_control``, ``citations``…) is skipped by the decoder, so an unknown
field never becomes an error. Content blocks are a tagged union on ``type``: text, image and
``tool_use`` blocks reuse the outbound translation's shapes
(:mod:`nexus_trio.dialects.anthropic.shapes`), and a block of any other type is refused by the
decoder with the path of its ``type``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from nexus_trio.dialects.anthropic.shapes import Image, Text, ToolUse

__all__ = [
    "Block",
    "Image",
    "Message",
    "MessagesRequest",
    "RedactedThinking",
    "Text",
    "Thinking",
    "ToolChoice",
    "ToolDef",
    "ToolResult",
    "ToolUse",
]


class Thinking(msgspec.Struct, tag="thinking", tag_field="type"):
    """A ``thinking`` block of an earlier answer: dropped from the history."""


class RedactedThinking(msgspec.Struct, tag="redacted_thinking", tag_field="type"):
    """A ``redacted_thinking`` block of an earlier answer: dropped from the history."""


class ToolResult(msgspec.Struct, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[Text | Image] = ""
    is_error: bool = False


Block = Text | Image | ToolUse | ToolResult | Thinking | RedactedThinking


class Message(msgspec.Struct):
    role: str
    content: str | list[Block]


class ToolDef(msgspec.Struct):
    """A custom tool (``type`` absent or ``custom``) or a server tool (any other ``type``)."""

    name: str
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoice(msgspec.Struct):
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class MessagesRequest(msgspec.Struct):
    """A ``POST /v1/messages`` or ``/v1/messages/count_tokens`` body (the latter has no
    ``max_tokens``, so it is optional here)."""

    model: str
    messages: list[Message]
    system: str | list[Text] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    tools: list[ToolDef] | None = None
    tool_choice: ToolChoice | None = None
