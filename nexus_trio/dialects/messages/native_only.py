"""A Messages request with what only a native backend takes replaced, so that it can be routed
(docs/messages-api.md#native-only-content).

A request may hold content with no chat-completions equivalent — a ``document`` or
``search_result`` block, a server tool's history (``server_tool_use``,
``web_search_tool_result``…), an image by ``file`` id, a ``tool_choice`` forcing a server tool —
which an ``anthropic`` backend takes as it is. Such a request is routed as its translatable
part: each such block becomes an empty text block (turns keep their place) and the forcing
``tool_choice`` is left out. That body only routes the request: a backend that must translate
it refuses it (the first refusal, kept by the caller); a native backend gets the client's own.
"""

from __future__ import annotations

import msgspec

from nexus_trio import errors

__all__ = ["translatable"]

_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_CONTENT = msgspec.json.Decoder(str | list[msgspec.Raw])
_ENCODER = msgspec.json.Encoder()
_EMPTY = msgspec.Raw(b'{"type":"text","text":""}')
_TURN_BLOCKS = frozenset(
    {"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)
_RESULT_BLOCKS = frozenset({"text", "image"})
_SOURCES = frozenset({"base64", "url"})
_CUSTOM = frozenset({None, "custom"})


class _Source(msgspec.Struct):
    type: str = ""


class _Block(msgspec.Struct):
    type: str = ""
    source: _Source | None = None
    content: str | list[msgspec.Raw] = ""


class _Tool(msgspec.Struct):
    name: str = ""
    type: str | None = None


class _Choice(msgspec.Struct):
    type: str = ""
    name: str | None = None


_BLOCK = msgspec.json.Decoder(_Block)
_TOOLS = msgspec.json.Decoder(list[_Tool])
_CHOICE = msgspec.json.Decoder(_Choice)


def translatable(body: bytes, refusal: errors.Untranslatable) -> bytes:
    """``body`` (a Messages request ``refusal`` was raised for) with every block that has no
    chat-completions equivalent replaced and a ``tool_choice`` forcing a server tool left out.

    Raises:
        Untranslatable: ``refusal``, when the body is not shaped as a Messages request.
    """
    try:
        top = _TOP.decode(body)
        if "messages" in top:
            turns = [_turn(raw) for raw in _LIST.decode(top["messages"])]
            top["messages"] = msgspec.Raw(_ENCODER.encode(turns))
        if "system" in top and bytes(top["system"]).lstrip().startswith(b"["):
            top["system"] = _blocks(_LIST.decode(top["system"]), frozenset({"text"}))
        if "tool_choice" in top and _forces_server_tool(top):
            del top["tool_choice"]
        return _ENCODER.encode(top)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise refusal from exc


def _turn(raw: msgspec.Raw) -> dict[str, msgspec.Raw]:
    turn = _TOP.decode(raw)
    content = _CONTENT.decode(turn.get("content", b'""'))
    if isinstance(content, list):
        turn["content"] = _blocks(content, _TURN_BLOCKS)
    return turn


def _blocks(raws: list[msgspec.Raw], kinds: frozenset[str]) -> msgspec.Raw:
    """The blocks of ``kinds`` (a tool result's own blocks checked too), each other an empty
    text block."""
    out: list[msgspec.Raw] = []
    for raw in raws:
        block = _BLOCK.decode(raw)
        if block.type not in kinds or (
            block.source is not None and block.source.type not in _SOURCES
        ):
            out.append(_EMPTY)
            continue
        if block.type == "tool_result" and isinstance(block.content, list):
            result = _TOP.decode(raw)
            result["content"] = _blocks(block.content, _RESULT_BLOCKS)
            raw = msgspec.Raw(_ENCODER.encode(result))
        out.append(raw)
    return msgspec.Raw(_ENCODER.encode(out))


def _forces_server_tool(top: dict[str, msgspec.Raw]) -> bool:
    tools = _TOOLS.decode(top.get("tools", b"[]"))
    custom = {tool.name for tool in tools if tool.type in _CUSTOM}
    choice = _CHOICE.decode(top["tool_choice"])
    return (choice.type == "tool" and choice.name not in custom) or (
        choice.type == "any" and not custom
    )
