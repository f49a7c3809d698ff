"""Responses ``tools`` and ``tool_choice`` → chat-completions function tools and ``tool_choice``
(docs/responses-api.md#tools).

``function`` tools become chat function tools (``strict`` kept). A ``namespace`` tool is
flattened into its function tools, each named ``<namespace>__<name>`` (no ``__`` added when the
namespace already ends with ``__``, as Codex's ``mcp__server__`` namespaces do); a flattened
name that collides with another tool's gets ``_2``, ``_3``… appended. :attr:`ToolSet.namespaces`
maps each flattened name back to its namespace and name, so the answer's ``function_call`` items
carry them apart as the client registered them. Every other tool type (the built-in tools and
any unknown type) is left out of what the backend sees; only a ``tool_choice`` that forces one
is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

import msgspec

from nexus_trio import errors
from nexus_trio.dialects.responses.shapes import (
    TYPED,
    FunctionTool,
    NamespaceTool,
    ToolChoice,
    decode_at,
)

__all__ = ["ToolSet", "chat_tool_choice", "flat_name", "tool_set"]

_FUNCTION = msgspec.json.Decoder(FunctionTool)
_NAMESPACE = msgspec.json.Decoder(NamespaceTool)
_OPTIONS = ("auto", "none", "required")


@dataclass
class ToolSet:
    """The function tools the backend sees, in chat shape (:attr:`chat`) and in the Responses
    shape the answer echoes (:attr:`echo`), and where each flattened name came from."""

    chat: list[dict[str, Any]] = field(default_factory=list)
    echo: list[dict[str, Any]] = field(default_factory=list)
    #: Flattened name → ``[namespace, name]``.
    namespaces: dict[str, list[str]] = field(default_factory=dict)
    #: ``(namespace, name)`` → its first flattened name; the next collision suffix per base.
    _flat: dict[tuple[str, str], str] = field(default_factory=dict)
    _suffixes: dict[str, int] = field(default_factory=dict)

    def name_for(self, namespace: str | None, name: str) -> str:
        """The chat name of the function ``name`` of ``namespace`` (None: a top-level tool)."""
        if namespace is None:
            return name
        return self._flat.get((namespace, name)) or flat_name(namespace, name)

    def add(self, tool: FunctionTool, namespace: str | None, taken: set[str]) -> None:
        """Add one function tool; ``taken``: the names in use (a flattened name joins it)."""
        name = tool.name
        if namespace is not None:
            name = base = flat_name(namespace, tool.name)
            suffix = self._suffixes.get(base, 2)
            while name in taken:
                name, suffix = f"{base}_{suffix}", suffix + 1
            self._suffixes[base] = suffix
            taken.add(name)
            self.namespaces[name] = [namespace, tool.name]
            self._flat.setdefault((namespace, tool.name), name)
        function: dict[str, Any] = {"name": name}
        echo: dict[str, Any] = {"type": "function", "name": name}
        for key, value in (
            ("description", tool.description),
            ("parameters", tool.parameters),
            ("strict", tool.strict),
        ):
            if value is not None:
                function[key] = echo[key] = value
        self.chat.append({"type": "function", "function": function})
        self.echo.append(echo)


#: The most function tools (namespaces flattened) one request may offer.
MAX_TOOLS = 4096


def flat_name(namespace: str, name: str) -> str:
    """The flattened name of a namespace's function (before any collision suffix)."""
    return f"{namespace}{'' if namespace.endswith('__') else '__'}{name}"


def tool_set(tools: list[msgspec.Raw] | None) -> ToolSet:
    """The function tools of a request's ``tools`` (see the module docstring).

    Raises:
        InvalidValue: a function tool (or a namespace) is malformed; ``param`` names it.
    """
    functions: list[tuple[FunctionTool, str | None]] = []
    for index, raw in enumerate(tools or ()):
        where = f"tools[{index}]"
        kind = decode_at(TYPED, raw, where).type
        if kind == "function":
            functions.append((decode_at(_FUNCTION, raw, where), None))
        elif kind == "namespace":
            space = decode_at(_NAMESPACE, raw, where)
            for inner_index, inner in enumerate(space.tools):
                inner_where = f"{where}.tools[{inner_index}]"
                if decode_at(TYPED, inner, inner_where).type == "function":
                    functions.append((decode_at(_FUNCTION, inner, inner_where), space.name))
    if len(functions) > MAX_TOOLS:
        raise errors.InvalidValue(
            f"'tools' holds {len(functions)} function tools (namespaces flattened); at most "
            f"{MAX_TOOLS} are accepted.",
            param="tools",
        )
    found = ToolSet()
    taken = {tool.name for tool, namespace in functions if namespace is None}
    for tool, namespace in functions:
        found.add(tool, namespace, taken)
    return found


def chat_tool_choice(
    choice: str | ToolChoice | None, tools: ToolSet
) -> str | dict[str, Any] | None:
    """The chat ``tool_choice`` (None: leave it out). ``allowed_tools`` also narrows
    ``tools.chat`` to the functions it names.

    Raises:
        InvalidValue: the choice forces a tool the backend cannot run (a built-in tool, a name
            that is no function tool, ``required`` with no function tools) or is not valid.
    """
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in _OPTIONS:
            raise errors.InvalidValue(
                f"'tool_choice' {choice!r} is not valid.", param="tool_choice"
            )
        if not tools.chat:
            return _no_tools("tool_choice") if choice == "required" else None
        return choice
    if choice.type == "function":
        named = _function_named(choice.name, *_name_index(tools))
        return {"type": "function", "function": {"name": named}}
    if choice.type == "allowed_tools" and choice.mode in ("auto", "required"):
        index = _name_index(tools)
        allowed = {
            _function_named(tool.name, *index)
            for tool in choice.tools or ()
            if tool.type == "function"
        }
        tools.chat = [tool for tool in tools.chat if tool["function"]["name"] in allowed]
        if not tools.chat:
            return _no_tools("tool_choice.tools") if choice.mode == "required" else None
        return choice.mode
    raise errors.Untranslatable(
        f"'tool_choice' forces the tool type {choice.type!r}, which no backend of this gateway "
        "can run (only function tools are passed on).",
        param="tool_choice",
    )


def _name_index(tools: ToolSet) -> tuple[set[str], dict[str, list[str]]]:
    """The chat names of ``tools``, and each namespaced function's flattened names by its own
    name (built once per choice: a choice may name thousands)."""
    by_inner: dict[str, list[str]] = {}
    for flat, (_, inner) in tools.namespaces.items():
        by_inner.setdefault(inner, []).append(flat)
    return {tool["function"]["name"] for tool in tools.chat}, by_inner


def _function_named(name: str | None, names: set[str], by_inner: dict[str, list[str]]) -> str:
    """The chat name of the function tool a choice names: a top-level or flattened name, or the
    name of exactly one namespace's function."""
    if name is not None and name in names:
        return name
    inner = by_inner.get(name or "", [])
    if len(inner) == 1:
        return inner[0]
    raise errors.InvalidValue(
        f"'tool_choice.name' {name!r} names no function tool of the request.",
        param="tool_choice.name",
    )


def _no_tools(param: str) -> NoReturn:
    raise errors.Untranslatable(
        f"'{param}' requires a tool call, but the request has no function tools a backend can "
        "run (built-in tools are not passed on).",
        param=param,
    )
