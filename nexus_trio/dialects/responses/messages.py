"""Responses ``input`` items → chat-completions messages (docs/responses-api.md#input).

A string is one user message. ``message`` items keep their role (``developer`` becomes
``system``); their content is a string when it is one text part, else a list of chat parts
(``input_text``/``output_text``/``refusal`` → ``text``, ``input_image`` → ``image_url``).
``function_call`` items become ``tool_calls`` of an assistant message — of the assistant message
just before them, so a turn's text and its calls, and consecutive calls, make one message —
and ``function_call_output`` items ``tool`` messages (their text; images and files in a tool's
output are left out: chat tool messages hold text). ``reasoning`` items, and item and part
types the translation does not know, are left out. Refused with a 400 naming the field: an
image by ``file_id`` or an ``input_file`` in a message (the gateway holds no files), an image
outside a user message, an ``item_reference`` (the gateway resolves no item ids), a role that
is none of the four.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from nexus_trio import errors
from nexus_trio.dialects.responses.shapes import (
    TYPED,
    FunctionCallItem,
    FunctionCallOutputItem,
    ImagePart,
    MessageItem,
    RefusalPart,
    TextPart,
    decode_at,
)
from nexus_trio.dialects.responses.tools import ToolSet

__all__ = ["chat_messages"]

_MESSAGE = msgspec.json.Decoder(MessageItem)
_CALL = msgspec.json.Decoder(FunctionCallItem)
_CALL_OUTPUT = msgspec.json.Decoder(FunctionCallOutputItem)
_TEXT = msgspec.json.Decoder(TextPart)
_REFUSAL = msgspec.json.Decoder(RefusalPart)
_IMAGE = msgspec.json.Decoder(ImagePart)
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = ("input_text", "output_text")
_IMAGE_DETAILS = ("auto", "low", "high")
#: What becomes of an image or file part: passed on (a user message), left out (a tool's
#: output: chat tool messages hold text) or refused (the other roles).
Media = Literal["keep", "drop", "refuse"]


def chat_messages(items: str | list[msgspec.Raw], tools: ToolSet) -> list[dict[str, Any]]:
    """The chat messages for a request's ``input`` (see the module docstring).

    Raises:
        InvalidValue: an item is malformed or asks for what no backend can do; ``param``
            names it (``input[3].content[0].file_id``).
    """
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        where = f"input[{index}]"
        kind = decode_at(TYPED, raw, where).type
        if kind == "message":
            messages.append(_message(decode_at(_MESSAGE, raw, where), where))
        elif kind == "function_call":
            _add_call(messages, decode_at(_CALL, raw, where), tools)
        elif kind == "function_call_output":
            output = decode_at(_CALL_OUTPUT, raw, where)
            content = _content(output.output, f"{where}.output", "drop")
            messages.append({"role": "tool", "tool_call_id": output.call_id, "content": content})
        elif kind == "item_reference":
            raise errors.InvalidValue(
                f"'{where}': item references are not supported; send the item itself.",
                param=where,
            )
    return messages


def _message(item: MessageItem, where: str) -> dict[str, Any]:
    role = _ROLES.get(item.role)
    if role is None:
        raise errors.InvalidValue(
            f"'{where}.role' {item.role!r} is not valid.", param=f"{where}.role"
        )
    content = _content(item.content, f"{where}.content", "keep" if role == "user" else "refuse")
    return {"role": role, "content": content}


def _add_call(messages: list[dict[str, Any]], item: FunctionCallItem, tools: ToolSet) -> None:
    call = {
        "id": item.call_id,
        "type": "function",
        "function": {
            "name": tools.name_for(item.namespace, item.name),
            "arguments": item.arguments or "{}",
        },
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _content(content: str | list[msgspec.Raw], where: str, media: Media) -> Any:
    """A string (one text part, or none), or chat content parts."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for index, raw in enumerate(content):
        part_where = f"{where}[{index}]"
        kind = decode_at(TYPED, raw, part_where).type
        if kind in _TEXT_PARTS:
            parts.append({"type": "text", "text": decode_at(_TEXT, raw, part_where).text})
        elif kind == "refusal":
            parts.append({"type": "text", "text": decode_at(_REFUSAL, raw, part_where).refusal})
        elif kind not in ("input_image", "input_file") or media == "drop":
            continue
        elif kind == "input_image" and media == "keep":
            parts.append(_image(decode_at(_IMAGE, raw, part_where), part_where))
        elif kind == "input_file":
            raise errors.Untranslatable(
                f"'{part_where}': a file is not supported.", param=part_where
            )
        else:
            what = "an image outside a user message"
            raise errors.InvalidValue(f"'{part_where}': {what} is not supported.", param=part_where)
    if not parts:
        return ""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _image(part: ImagePart, where: str) -> dict[str, Any]:
    if part.image_url is None:
        param = f"{where}.file_id" if part.file_id is not None else f"{where}.image_url"
        raise errors.Untranslatable(
            f"'{param}': images are passed on by 'image_url' (an http(s) or base64 data: URL) "
            "only; the gateway holds no files.",
            param=param,
        )
    image: dict[str, Any] = {"url": part.image_url}
    if part.detail in _IMAGE_DETAILS:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}
