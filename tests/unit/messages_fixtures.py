"""Fixtures of the Messages dialect tests: a Claude Code-shaped request (the shapes recorded
from Claude Code 2.1 on the wire, made small), chat-completions chunks as llama.cpp, vLLM and
Ollama stream them, and the official ``anthropic`` SDK run offline against a fixed answer."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2

#: What Claude Code sends, field by field (its ~80 KB of system text and schemas made small).
CLAUDE_CODE_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 32000,
    "stream": True,
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Use the tools.", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
            {"type": "text", "text": "say hi", "cache_control": {"type": "ephemeral"}},
        ]},
        {"role": "system", "content": "gitStatus: clean"},
    ],
    "tools": [
        {"name": "Bash", "description": "Run a command.", "input_schema": {
            "type": "object", "properties": {"command": {"type": "string"}},
            "required": ["command"], "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#"}},
        {"name": "WebSearch", "description": "Search.", "input_schema": {
            "type": "object", "properties": {"query": {"type": "string"}}}},
    ],
    "thinking": {"type": "adaptive"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
    "metadata": {"user_id": '{"device_id":"d","session_id":"s"}'},
}  # fmt: skip


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def chunk(delta: dict[str, Any], finish: str | None = None, **choice: Any) -> str:
    """One ``chat.completion.chunk``'s JSON text with one choice."""
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "backend-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **choice}],
        }
    )


def usage_chunk(prompt: int, completion: int, cached: int | None = None) -> str:
    """The usage-only chunk ``stream_options.include_usage`` adds at the end."""
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return json.dumps({"id": "chatcmpl-1", "choices": [], "usage": usage})


def tool_delta(index: int, *, id: str | None = None, name: str | None = None,
               arguments: str | None = None) -> dict[str, Any]:  # fmt: skip
    call: dict[str, Any] = {"index": index, "function": {}}
    if id is not None:
        call |= {"id": id, "type": "function"}
    if name is not None:
        call["function"]["name"] = name
    if arguments is not None:
        call["function"]["arguments"] = arguments
    return {"tool_calls": [call]}


def sdk_client(
    status: int, body: bytes, *, stream: bool = False, seen: list[bytes] | None = None
) -> anthropic.Anthropic:
    """The official SDK, answered ``status`` and ``body`` by an in-process transport (an
    event stream when ``stream``); each request body it sends is appended to ``seen``."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        if seen is not None:
            seen.append(request.read())
        kind = "text/event-stream" if stream else "application/json"
        return httpx2.Response(status, headers={"content-type": kind}, content=body)

    return anthropic.Anthropic(
        api_key="test-key",
        base_url="http://gateway.test",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    )
