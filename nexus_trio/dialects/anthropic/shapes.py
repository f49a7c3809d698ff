"""The request shapes on both sides of the Anthropic translation.

What the client sends (an OpenAI chat request, decoded as a view: only the fields the
translation reads or refuses) and what Anthropic's ``POST /v1/messages`` receives (encoded
with ``omit_defaults``, so an unset option is left out rather than sent as ``null``).
"""

from __future__ import annotations

from typing import Any

import msgspec

# -- what the client sent (OpenAI) ------------------------------------------------------------


class ImageURL(msgspec.Struct):
    url: str


class Part(msgspec.Struct):
    type: str
    text: str | None = None
    image_url: ImageURL | None = None


class FunctionCall(msgspec.Struct):
    name: str
    arguments: str


class ToolCall(msgspec.Struct):
    id: str
    function: FunctionCall


class Message(msgspec.Struct):
    role: str
    content: str | list[Part] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDef(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: msgspec.Raw = msgspec.Raw()


class Tool(msgspec.Struct):
    function: FunctionDef
    type: str = "function"


class Named(msgspec.Struct):
    name: str


class NamedChoice(msgspec.Struct):
    function: Named


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ResponseFormat(msgspec.Struct):
    type: str


class ChatRequest(msgspec.Struct):
    model: str
    messages: list[Message]
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: str | NamedChoice | None = None
    parallel_tool_calls: bool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: ResponseFormat | None = None
    audio: dict[str, Any] | None = None
    modalities: list[str] | None = None


# -- what Anthropic receives ------------------------------------------------------------------


class Text(msgspec.Struct, tag="text", tag_field="type"):
    text: str


class Base64(msgspec.Struct, tag="base64", tag_field="type"):
    media_type: str
    data: str


class URL(msgspec.Struct, tag="url", tag_field="type"):
    url: str


class Image(msgspec.Struct, tag="image", tag_field="type"):
    source: Base64 | URL


class ToolUse(msgspec.Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: msgspec.Raw


class ToolResult(msgspec.Struct, tag="tool_result", tag_field="type", omit_defaults=True):
    tool_use_id: str
    content: list[Text | Image] = msgspec.field(default_factory=list)


Block = Text | Image | ToolUse | ToolResult


class Turn(msgspec.Struct):
    role: str
    content: list[Block]


class AnthropicTool(msgspec.Struct, omit_defaults=True):
    name: str
    input_schema: msgspec.Raw
    description: str | None = None


class ToolChoice(msgspec.Struct, omit_defaults=True):
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(msgspec.Struct):
    user_id: str


class MessagesRequest(msgspec.Struct, omit_defaults=True):
    model: str
    max_tokens: int
    messages: list[Turn]
    system: list[Text] | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: list[str] | None = None
    metadata: Metadata | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: ToolChoice | None = None
    stream: bool = False
