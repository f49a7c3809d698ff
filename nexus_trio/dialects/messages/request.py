"""A Messages API request → a chat-completions request (docs/messages-api.md#requests).

Theory of operation. The body is decoded once into the view of :mod:`.shapes`; a decoding
error becomes a 400 whose ``param`` is the path msgspec reports (``messages[2].content[0].type``
for a block type with no chat-completions equivalent). Then each Messages turn becomes one or
more chat messages, in order:

- the top-level ``system`` (a string or text blocks) → the first ``system`` message; a
  ``role: "system"`` turn inside ``messages`` → a ``system`` message where it stands;
- a ``user`` turn → its ``tool_result`` blocks as ``tool`` messages first (chat completions
  wants them right after the assistant turn that called the tools), then one ``user`` message
  with the turn's text and images, and the images tool results returned;
- an ``assistant`` turn → one ``assistant`` message: its text, its ``tool_use`` blocks as
  ``tool_calls``; ``thinking`` and ``redacted_thinking`` blocks are dropped.

Text blocks of one message are joined with a blank line; a message of text only has string
content, one with images a list of parts. Tools and ``tool_choice`` are :mod:`.tools`' part.
A block with no chat-completions equivalent, and a ``tool_choice`` forcing a server tool, are
refused as :class:`~nexus_trio.errors.Untranslatable`, which the caller defers until a backend
that must translate is chosen (:mod:`.native_only`).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from nexus_trio import errors
from nexus_trio.dialects.anthropic.shapes import URL
from nexus_trio.dialects.messages.shapes import (
    Block,
    Image,
    MessagesRequest,
    RedactedThinking,
    Text,
    Thinking,
    ToolResult,
    ToolUse,
)
from nexus_trio.dialects.messages.tools import tool_fields

__all__ = ["chat_request", "decode"]

_DECODER = msgspec.json.Decoder(MessagesRequest)
#: msgspec's validation message: what is wrong, then where (``$``, ``$.messages[0].role``…).
_WHERE = re.compile(r"^(?P<what>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_BAD_TAG = re.compile(r"Invalid value '([^']*)'")
#: What separates the text blocks of one message once they are one string.
JOINER = "\n\n"


def decode(body: bytes) -> MessagesRequest:
    """The request view of a Messages (or count_tokens) body.

    Raises:
        InvalidValue: a field has the wrong type or a block type has no equivalent; ``param``
            names it.
        InvalidJSON: the body is not JSON, or is nested too deeply to decode.
    """
    try:
        return _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise errors.InvalidJSON(f"The request body is not valid JSON: {exc}.") from exc
    except RecursionError as exc:  # docs/messages-api.md#requests
        raise errors.InvalidJSON("The request body is nested too deeply to be decoded.") from exc


def _invalid(text: str) -> errors.InvalidValue:
    match = _WHERE.match(text)
    what, path = (match["what"], match["path"] or "") if match else (text, "")
    if missing := _MISSING.fullmatch(what):
        path = f"{path}.{missing[1]}" if path else missing[1]
        return errors.InvalidValue(f"'{path}' is required.", param=path)
    if not path:
        return errors.InvalidValue(f"The request body must be a JSON object ({what}).")
    if path.endswith("type") and (tag := _BAD_TAG.fullmatch(what)):
        return errors.Untranslatable(
            f"'{path}' {tag[1]!r} has no chat-completions equivalent for this backend.",
            param=path,
        )
    return errors.InvalidValue(f"'{path}': {what}.", param=path)


def chat_request(body: bytes) -> dict[str, Any]:
    """The chat-completions request body for a Messages request body (see the module
    docstring; docs/messages-api.md#requests). Unknown fields are ignored.

    Raises:
        InvalidValue: a field is malformed or cannot be translated; ``param`` names it.
        InvalidJSON: the body is not JSON, or is nested too deeply.
    """
    request = decode(body)
    out: dict[str, Any] = {"model": request.model, "messages": chat_messages(request)}
    if request.max_tokens is not None:
        out["max_tokens"] = request.max_tokens
    for name, value in (
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("top_k", request.top_k),
    ):
        if value is not None:
            out[name] = value
    if request.stop_sequences:
        out["stop"] = request.stop_sequences
    if request.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    out.update(tool_fields(request.tools, request.tool_choice))
    return out


def chat_messages(request: MessagesRequest) -> list[dict[str, Any]]:
    """The chat messages of a request, system content first and then every turn in order."""
    messages: list[dict[str, Any]] = []
    system = request.system
    if isinstance(system, list):
        system = JOINER.join(block.text for block in system)
    if system:
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        if message.role == "user":
            messages += _user(message.content, where)
        elif message.role == "assistant":
            messages.append(_assistant(message.content, where))
        elif message.role == "system":
            messages.append({"role": "system", "content": _system(message.content, where)})
        else:
            raise errors.InvalidValue(
                f"'{where}.role' {message.role!r} is not user, assistant or system.",
                param=f"{where}.role",
            )
    return messages


def _misplaced(where: str, block: Block, role: str) -> errors.InvalidValue:
    kind = block.__struct_config__.tag
    return errors.InvalidValue(
        f"'{where}': a {kind!r} block cannot be in {role} message.", param=f"{where}.type"
    )


def _user(content: str | list[Block], where: str) -> list[dict[str, Any]]:
    """The ``tool`` messages of a user turn's tool results, then its ``user`` message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict[str, Any]] = []
    returned: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        if isinstance(block, ToolResult):
            text, images = _result(block.content)
            results.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": text})
            returned += images
        elif isinstance(block, Text):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, Image):
            parts.append(_image(block))
        elif isinstance(block, ToolUse):
            raise _misplaced(f"{where}.content[{index}]", block, "a user")
    parts = returned + parts
    if parts:
        results.append({"role": "user", "content": _content(parts)})
    return results


def _result(content: str | list[Text | Image]) -> tuple[str, list[dict[str, Any]]]:
    """A tool result's text, and the image parts it returned (they follow in a user message)."""
    if isinstance(content, str):
        return content, []
    texts = [block.text for block in content if isinstance(block, Text)]
    images = [_image(block) for block in content if isinstance(block, Image)]
    return JOINER.join(texts), images


def _assistant(content: str | list[Block], where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        if isinstance(block, Text):
            texts.append(block.text)
        elif isinstance(block, ToolUse):
            arguments = bytes(block.input).decode().strip()
            if not arguments.startswith("{"):
                param = f"{where}.content[{index}].input"
                raise errors.InvalidValue(f"'{param}' must be an object.", param=param)
            function = {"name": block.name, "arguments": arguments}
            calls.append({"id": block.id, "type": "function", "function": function})
        elif not isinstance(block, Thinking | RedactedThinking):
            raise _misplaced(f"{where}.content[{index}]", block, "an assistant")
    message: dict[str, Any] = {"role": "assistant", "content": JOINER.join(texts)}
    if calls:
        message["tool_calls"] = calls
        message["content"] = message["content"] or None
    return message


def _system(content: str | list[Block], where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for index, block in enumerate(content):
        if not isinstance(block, Text):
            raise _misplaced(f"{where}.content[{index}]", block, "a system")
        texts.append(block.text)
    return JOINER.join(texts)


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """String content when every part is text, else the parts."""
    if all(part["type"] == "text" for part in parts):
        return JOINER.join(part["text"] for part in parts)
    return parts


def _image(block: Image) -> dict[str, Any]:
    source = block.source
    if isinstance(source, URL):
        url = source.url
    else:
        url = f"data:{source.media_type};base64,{source.data}"
    return {"type": "image_url", "image_url": {"url": url}}
