"""A Responses request with what only a native backend takes replaced, so that it can be routed
(docs/responses-api.md#native-only-content).

A request may hold what a backend serving the Responses API takes but chat completions cannot
express: an ``input_file`` part, an image by ``file_id``, a ``tool_choice`` forcing a built-in
tool, ``background``, a ``conversation`` or a stored ``prompt``. Such a request is routed as its
translatable part: each such part becomes an empty ``input_text`` part (messages keep their
place), and ``tool_choice`` (unless ``auto``, ``none`` or a function) and those fields are left
out. That body only routes the request: a backend that must translate it refuses it (the first
refusal, kept by the caller); a native backend gets the client's own.
"""

from __future__ import annotations

import msgspec

from nexus_trio import errors

__all__ = ["translatable"]

_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_CONTENT = msgspec.json.Decoder(str | list[msgspec.Raw])
_ENCODER = msgspec.json.Encoder()
_EMPTY = msgspec.Raw(b'{"type":"input_text","text":""}')
_NATIVE_FIELDS = ("background", "conversation", "prompt")


class _Part(msgspec.Struct):
    type: str = "message"
    image_url: str | None = None


class _Choice(msgspec.Struct):
    type: str = ""


_PART = msgspec.json.Decoder(_Part)
_CHOICE = msgspec.json.Decoder(str | _Choice)


def translatable(body: bytes, refusal: errors.Untranslatable) -> bytes:
    """``body`` (a Responses request ``refusal`` was raised for) without what only a native
    backend takes (see the module docstring).

    Raises:
        Untranslatable: ``refusal``, when the body is not shaped as a Responses request.
    """
    try:
        top = _TOP.decode(body)
        for field in _NATIVE_FIELDS:
            top.pop(field, None)
        if "tool_choice" in top and not _plain(_CHOICE.decode(top["tool_choice"])):
            del top["tool_choice"]
        raw_input = top.get("input")
        if raw_input is not None and bytes(raw_input).lstrip().startswith(b"["):
            items = [_item(raw) for raw in _LIST.decode(raw_input)]
            top["input"] = msgspec.Raw(_ENCODER.encode(items))
        return _ENCODER.encode(top)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise refusal from exc


def _plain(choice: str | _Choice) -> bool:
    """A choice any chat backend takes: ``auto``, ``none``, a function."""
    return choice in ("auto", "none") or (isinstance(choice, _Choice) and choice.type == "function")


def _item(raw: msgspec.Raw) -> msgspec.Raw:
    """A message item with its file parts (and images by file) replaced; others as they are."""
    if _PART.decode(raw).type != "message":
        return raw
    item = _TOP.decode(raw)
    content = _CONTENT.decode(item.get("content", b'""'))
    if isinstance(content, str):
        return raw
    parts = [_EMPTY if _native_only(_PART.decode(part)) else part for part in content]
    item["content"] = msgspec.Raw(_ENCODER.encode(parts))
    return msgspec.Raw(_ENCODER.encode(item))


def _native_only(part: _Part) -> bool:
    return part.type == "input_file" or (part.type == "input_image" and part.image_url is None)
