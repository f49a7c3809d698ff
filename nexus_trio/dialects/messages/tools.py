"""A Messages request's ``tools`` and ``tool_choice`` → chat completions'
(docs/messages-api.md#tools).

A custom tool (``type`` absent or ``"custom"``) becomes a function tool: ``name``,
``description``, ``input_schema`` as ``parameters``. A server tool (any other ``type``:
``web_search_20250305``, ``bash_20250124``, ``text_editor_…``, ``code_execution_…``…) has no
schema a backend could call, so it is left out of what the backend sees; only a
``tool_choice`` that forces a tool the backend does not get is refused.
"""

from __future__ import annotations

from typing import Any

from nexus_trio import errors
from nexus_trio.dialects.messages.shapes import ToolChoice, ToolDef

__all__ = ["tool_fields"]

#: Anthropic ``tool_choice.type`` → chat completions ``tool_choice`` (``tool`` is named).
_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
_CUSTOM = (None, "custom")
#: The most tools one translated request may offer (as the Responses API's translation).
MAX_TOOLS = 4096


def tool_fields(tools: list[ToolDef] | None, choice: ToolChoice | None) -> dict[str, Any]:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls`` for the chat request (only the
    ones that apply).

    Raises:
        InvalidValue: a custom tool has no ``input_schema``, or ``tool_choice`` is unknown or
            forces a tool the backend does not get, or there are more than
            :data:`MAX_TOOLS` tools.
    """
    if tools is not None and len(tools) > MAX_TOOLS:
        raise errors.InvalidValue(
            f"'tools' holds {len(tools)} tools; at most {MAX_TOOLS} are accepted.", param="tools"
        )
    functions = [_function(tool, index) for index, tool in enumerate(tools or ()) if _custom(tool)]
    out: dict[str, Any] = {"tools": functions} if functions else {}
    if choice is None:
        return out
    if choice.type == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": _named(choice, tools)}}
    elif choice.type not in _CHOICES:
        raise errors.InvalidValue(
            f"'tool_choice.type' {choice.type!r} is not auto, any, tool or none.",
            param="tool_choice.type",
        )
    elif choice.type == "any" and not functions:
        raise errors.Untranslatable(
            "'tool_choice' 'any' forces a tool call, but the request has no custom tool a "
            "chat-completions backend can call (server tools are left out).",
            param="tool_choice",
        )
    elif functions:
        out["tool_choice"] = _CHOICES[choice.type]
    if choice.disable_parallel_tool_use and functions:
        out["parallel_tool_calls"] = False
    return out


def _custom(tool: ToolDef) -> bool:
    return tool.type in _CUSTOM


def _function(tool: ToolDef, index: int) -> dict[str, Any]:
    if tool.input_schema is None:
        param = f"tools[{index}].input_schema"
        raise errors.InvalidValue(f"'{param}' is required.", param=param)
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.input_schema
    return {"type": "function", "function": function}


def _named(choice: ToolChoice, tools: list[ToolDef] | None) -> str:
    """The name of the tool ``tool_choice`` forces, checked against the request's tools."""
    name = choice.name
    if not name:
        raise errors.InvalidValue("'tool_choice.name' is required.", param="tool_choice.name")
    tool = next((tool for tool in tools or () if tool.name == name), None)
    if tool is None:
        raise errors.InvalidValue(
            f"'tool_choice.name' {name!r} names no tool of the request.",
            param="tool_choice.name",
        )
    if not _custom(tool):
        raise errors.Untranslatable(
            f"'tool_choice.name' {name!r} is a server tool ({tool.type}), which a "
            "chat-completions backend cannot run.",
            param="tool_choice.name",
        )
    return name
