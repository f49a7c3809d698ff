"""Why Anthropic's Messages API would refuse a request body, written from its published API
reference: alternating turns starting with the user, tool results right after their tool calls
and first in their turn, no blank text, no unknown keys. The fake server
(``tests/fake_anthropic.py``) refuses what these rules refuse; the unit tests check the
gateway's translations against them."""

from __future__ import annotations

import re
from typing import Any

_TOP_KEYS = {
    "model", "max_tokens", "messages", "system", "temperature", "top_p", "top_k",
    "stop_sequences", "metadata", "tools", "tool_choice", "stream",
}  # fmt: skip
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}


def problems(body: Any) -> str | None:
    """Why Anthropic would refuse this ``POST /v1/messages`` body; None when it is valid."""
    if not isinstance(body, dict):
        return "body: must be an object"
    extra = set(body) - _TOP_KEYS
    if extra:
        return f"{sorted(extra)[0]}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    for key in ("temperature", "top_p"):
        if key in body and not 0 <= body[key] <= 1:
            return f"{key}: must be between 0 and 1"
    if "system" in body and _bad_texts(body["system"]):
        return "system: text blocks must be non-empty"
    if "metadata" in body and set(body["metadata"]) - {"user_id"}:
        return "metadata: Extra inputs are not permitted"
    tools = body.get("tools", [])
    names = {tool.get("name") for tool in tools}
    for tool in tools:
        if not _TOOL_NAME.match(tool.get("name", "")) or set(tool) - {
            "name",
            "description",
            "input_schema",
        }:
            return "tools: invalid tool"
        if tool.get("input_schema", {}).get("type") != "object":
            return "tools.input_schema.type: Input should be 'object'"
    choice = body.get("tool_choice")
    if choice is not None:
        if choice.get("type") not in ("auto", "any", "tool", "none"):
            return "tool_choice.type: invalid"
        if choice["type"] == "tool" and choice.get("name") not in names:
            return "tool_choice.name: no such tool"
    problem = _turn_problems(body.get("messages"))
    if problem is None and not tools and _has_tool_blocks(body["messages"]):
        return "Requests which include `tool_use` or `tool_result` blocks must define tools."
    return problem


def _has_tool_blocks(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(turn["content"], list)
        and any(b["type"] in ("tool_use", "tool_result") for b in turn["content"])
        for turn in messages
    )


def _bad_texts(blocks: Any) -> bool:
    if isinstance(blocks, str):
        return not blocks.strip()
    return any(b.get("type") != "text" or not str(b.get("text", "")).strip() for b in blocks)


def _turn_problems(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    previous: dict[str, Any] | None = None
    for index, turn in enumerate(messages):
        where = f"messages.{index}"
        role = turn.get("role")
        if role not in ("user", "assistant") or set(turn) - {"role", "content"}:
            return f"{where}: invalid message"
        if index == 0 and role != "user":
            return "messages.0.role: the first message must use the user role"
        if previous is not None and previous["role"] == role:
            return f"{where}: roles must alternate between user and assistant"
        content = turn.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not content:
            return f"{where}.content: must be non-empty"
        problem = _block_problems(role, content, previous, where)
        if problem is not None:
            return problem
        previous = {"role": role, "content": content}
    return None


def _block_problems(
    role: str, content: list[dict[str, Any]], previous: dict[str, Any] | None, where: str
) -> str | None:
    allowed = {"user": {"text", "image", "tool_result"}, "assistant": {"text", "tool_use"}}[role]
    asked = {b["id"] for b in (previous or {}).get("content", []) if b["type"] == "tool_use"}
    seen_other = False
    answered = set()
    for position, block in enumerate(content):
        kind = block.get("type")
        at = f"{where}.content.{position}"
        if kind not in allowed:
            return f"{at}: {kind} blocks are not allowed in {role} messages"
        if kind == "text" and not str(block.get("text", "")).strip():
            return f"{at}: text content blocks must contain non-whitespace text"
        if kind == "image":
            source = block.get("source", {})
            if source.get("type") == "base64" and source.get("media_type") not in _MEDIA_TYPES:
                return f"{at}.source.media_type: unsupported"
            if source.get("type") not in ("base64", "url"):
                return f"{at}.source: invalid"
        if kind == "tool_result":
            if seen_other:
                return f"{at}: tool_result blocks must come first in their message"
            if block.get("tool_use_id") not in asked:
                return f"{at}: unexpected tool_use_id found in tool_result blocks"
            answered.add(block["tool_use_id"])
        else:
            seen_other = True
        if kind == "tool_use" and not isinstance(block.get("input"), dict):
            return f"{at}.input: must be an object"
    if role == "user" and asked - answered:
        return f"{where}: tool_use ids were found without tool_result blocks immediately after"
    return None
