"""What a client's request relayed untranslated may reach on the operator's account
(docs/messages-api.md#native-reach, docs/responses-api.md#native-reach).

A native exchange sends the client's own body, so everything in it reaches the backend: the
provider's server-side tools (Anthropic's ``web_search_…``, ``code_execution_…``, ``mcp_toolset``;
OpenAI's ``web_search``, ``file_search``, ``mcp``, ``code_interpreter``…), which run and are
billed on the operator's account, and body fields that reach other services or cost more
(``mcp_servers``, ``container``, ``service_tier``…). Deny by default: a tool the client runs
itself (Anthropic's custom tools; OpenAI's ``function``, ``custom`` and the functions of a
``namespace``) always passes, any other tool type only when the backend's ``native_tools``
names it, and a gated field only when its ``native_fields`` does. What is not allowed is
treated as a translated backend treats it, so the router's choice never turns a request into a
400: an offered tool is left out, a dropped field is left out, a field translation refuses is
refused, and a ``tool_choice`` that forces a tool left out is refused (nothing is sent).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import msgspec

from nexus_trio import errors
from nexus_trio.config import MESSAGES_NATIVE_FIELDS, RESPONSES_NATIVE_FIELDS, BackendConfig

__all__ = ["messages_body", "responses_body"]

_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_ENCODER = msgspec.json.Encoder()
_MESSAGES_CLIENT_TOOLS: frozenset[str | None] = frozenset({None, "custom"})
#: ``namespace``: passes with those of its tools that pass.
_RESPONSES_CLIENT_TOOLS: frozenset[str | None] = frozenset({"function", "custom", "namespace"})
#: Fields a translated Responses request refuses when set (docs/responses-api.md#requests).
_RESPONSES_REFUSED = frozenset({"background", "conversation", "prompt"})


class _Typed(msgspec.Struct):
    """A tool or a ``tool_choice``: only what the filter reads, anything accepted (a value of
    another type than the filter expects is no word it knows)."""

    type: Any = None
    name: Any = None
    #: A namespace's tools, an ``allowed_tools`` choice's list (read only for those).
    tools: msgspec.Raw = msgspec.Raw()

    def __post_init__(self) -> None:
        self.type, self.name = _word(self.type), _word(self.name)

    def words(self) -> list[str]:
        return [word for word in (self.type, self.name) if word]

    def listed(self) -> list[msgspec.Raw]:
        """Its ``tools``.

        Raises:
            ValidationError: not a list.
        """
        return _LIST.decode(self.tools) if self.tools else []


_TYPED = msgspec.json.Decoder(_Typed)
_CHOICE = msgspec.json.Decoder(str | _Typed)


def _word(value: object) -> str | None:
    """A string as it is, null as None, any other value as ``""`` (a word nothing matches)."""
    return value if value is None or isinstance(value, str) else ""


class _Reach:
    """One body's top level, filtered against one backend's allow-lists."""

    def __init__(self, body: bytes, backend: BackendConfig) -> None:
        self.top = _TOP.decode(body)
        self.tools = set(backend.native_tools)
        self.fields = set(backend.native_fields)
        #: Names and types of the tools left out.
        self.left_out: set[str] = set()

    def drop_fields(self, gated: Collection[str]) -> None:
        for field in gated:
            if field in self.top and field not in self.fields:
                del self.top[field]

    def keep(self, raw: msgspec.Raw, client_types: frozenset[str | None]) -> bool:
        """Whether a tool passes; one that does not is noted in :attr:`left_out`."""
        tool = _TYPED.decode(raw)
        if tool.type in client_types or tool.type in self.tools:
            return True
        self.left_out.update(tool.words())
        return False

    def kept(
        self, tools: list[msgspec.Raw], client_types: frozenset[str | None]
    ) -> list[msgspec.Raw]:
        """The tools that pass; a ``namespace`` with the tools of it that pass (left out when
        none does)."""
        out: list[msgspec.Raw] = []
        for raw in tools:
            tool = _TYPED.decode(raw)
            if tool.type != "namespace" or tool.type not in client_types or not tool.tools:
                if self.keep(raw, client_types):
                    out.append(raw)
                continue
            tools = tool.listed()
            inner = self.kept(tools, client_types)
            if len(inner) < len(tools):
                space = _TOP.decode(raw)
                space["tools"] = msgspec.Raw(_ENCODER.encode(inner))
                raw = msgspec.Raw(_ENCODER.encode(space))
            if inner:
                out.append(raw)
        return out

    def filter_tools(self, client_types: frozenset[str | None]) -> list[msgspec.Raw]:
        """The tools that pass (``tools`` left out when none does)."""
        raw = self.top.get("tools")
        if raw is None:
            return []
        kept = self.kept(_LIST.decode(raw), client_types)
        if kept:
            self.top["tools"] = msgspec.Raw(_ENCODER.encode(kept))
        else:
            self.top.pop("tools")
        return kept

    def choice(self) -> _Typed | None:
        """``tool_choice``, a string one (``"required"``) as its ``type``."""
        raw = self.top.get("tool_choice")
        if raw is None:
            return None
        choice = _CHOICE.decode(raw)
        return _Typed(type=choice) if isinstance(choice, str) else choice

    def body(self) -> bytes:
        return _ENCODER.encode(self.top)


def _forced(what: str, param: str = "tool_choice") -> errors.InvalidValue:
    return errors.InvalidValue(
        f"'{param}' forces {what}, which this backend does not allow (its native_tools).",
        param=param,
    )


def messages_body(body: bytes, backend: BackendConfig) -> bytes:
    """A Messages body (a JSON object, validated) as ``backend`` may be sent it.

    Raises:
        InvalidValue: ``tool_choice`` forces a tool left out, or ``any`` with none left; the
            tools cannot be read.
    """
    return _read(_messages_body, body, backend)


def responses_body(body: bytes, backend: BackendConfig) -> bytes:
    """A Responses body (a JSON object, validated) as ``backend`` may be sent it: a
    namespace keeps only its tools that pass.

    Raises:
        InvalidValue: a refused field is set, or ``tool_choice`` forces a tool left out; the
            tools cannot be read.
    """
    return _read(_responses_body, body, backend)


def _read(
    filter_body: Callable[[bytes, BackendConfig], bytes], body: bytes, backend: BackendConfig
) -> bytes:
    try:
        return filter_body(body, backend)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise errors.InvalidValue(
            f"'tools' or 'tool_choice' cannot be read for this backend ({exc}).", param="tools"
        ) from exc


def _messages_body(body: bytes, backend: BackendConfig) -> bytes:
    reach = _Reach(body, backend)
    reach.drop_fields(MESSAGES_NATIVE_FIELDS)
    kept = reach.filter_tools(_MESSAGES_CLIENT_TOOLS)
    choice = reach.choice()
    if choice is not None and reach.left_out:
        if choice.type == "tool" and choice.name in reach.left_out:
            raise _forced(f"the tool {choice.name!r}", "tool_choice.name")
        if choice.type == "any" and not kept:
            raise _forced("a tool call, but every tool of the request is a server tool")
        if not kept:
            reach.top.pop("tool_choice")
    return reach.body()


def _responses_body(body: bytes, backend: BackendConfig) -> bytes:
    reach = _Reach(body, backend)
    for field in sorted(_RESPONSES_REFUSED - reach.fields):
        if bytes(reach.top.get(field, msgspec.Raw(b"null"))) not in (b"null", b"false"):
            raise errors.InvalidValue(
                f"'{field}' is not served by this gateway for this backend.", param=field
            )
    reach.drop_fields(RESPONSES_NATIVE_FIELDS)
    kept = reach.filter_tools(_RESPONSES_CLIENT_TOOLS)
    choice = reach.choice()
    if choice is None or not reach.left_out:
        return reach.body()
    if choice.type in reach.left_out:
        raise _forced(f"the tool type {choice.type!r}")
    listed = choice.listed()
    if len(reach.kept(listed, _RESPONSES_CLIENT_TOOLS)) < len(listed):
        raise _forced("a tool this backend does not allow", "tool_choice.tools")
    if not kept:
        if choice.type == "required":
            raise _forced("a tool call, but every tool of the request is a built-in tool")
        reach.top.pop("tool_choice")
    return reach.body()
