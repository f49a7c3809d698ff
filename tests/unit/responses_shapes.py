"""Builders for the Responses translation tests: request bodies shaped like the ones Codex CLI
sends (recorded on the wire, shrunk), chat-completions answers and stream chunks as
OpenAI-compatible servers send them, an SSE reader, and the official openai SDK pointed at a
canned answer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx2
import openai

SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Runs a command.",
    "parameters": {"type": "object", "properties": {"command": {"type": "array"}}},
    "strict": False,
}
PLAN = {"type": "function", "name": "update_plan", "parameters": {"type": "object"}}
NAMESPACE = {
    "type": "namespace",
    "name": "mcp__files__",
    "description": "A file server.",
    "tools": [
        {"type": "function", "name": "read", "parameters": {"type": "object"}, "strict": True},
        {"type": "custom", "name": "freeform", "format": {"type": "text"}},
    ],
}
WEB_SEARCH = {"type": "web_search", "external_web_access": False}


def codex_body(**overrides: Any) -> dict[str, Any]:
    """What Codex CLI 0.171 sends to ``POST /v1/responses``, shrunk: two ``developer`` and two
    ``user`` messages of ``input_text``, function tools, a namespace and ``web_search``."""
    body: dict[str, Any] = {
        "model": "local-model",
        "stream": True,
        "store": False,
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "<permissions>sandboxed</permissions>"}],
            },
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "<collaboration_mode/>"}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "<environment_context/>"}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "say hi"}],
            },
        ],
        "tools": [SHELL, PLAN, NAMESPACE, WEB_SEARCH],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199-thread",
        "client_metadata": {"originator": "codex_exec"},
    }
    body.update(overrides)
    return body


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> bytes:
    """A ``chat.completion`` body with one choice."""
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "backend-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        **extra,
    }
    return encode(body)


USAGE = {
    "prompt_tokens": 40,
    "completion_tokens": 12,
    "total_tokens": 52,
    "prompt_tokens_details": {"cached_tokens": 32},
    "completion_tokens_details": {"reasoning_tokens": 5},
}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> str:
    """One ``chat.completion.chunk``'s data, as llama.cpp and vLLM send it."""
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "backend-model",
        "choices": [choice],
    }
    return json.dumps(body)


def usage_chunk(usage: dict[str, Any] = USAGE) -> str:
    """The usage-only chunk ``stream_options.include_usage`` adds at the end."""
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "backend-model",
            "choices": [],
            "usage": usage,
        }
    )


def tool_delta(
    index: int, *, id: str | None = None, name: str | None = None, arguments: str | None = None
) -> dict[str, Any]:
    function = {k: v for k, v in (("name", name), ("arguments", arguments)) if v is not None}
    call: dict[str, Any] = {"index": index, "function": function}
    if id is not None:
        call |= {"id": id, "type": "function"}
    return {"tool_calls": [call]}


def read_sse(stream: bytes) -> list[dict[str, Any]]:
    """The events' data, checking the framing: ``event:`` equals the data's ``type``."""
    events = []
    for block in stream.decode().split("\n\n"):
        if not block:
            continue
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: "), block
        assert data_line.startswith("data: "), block
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name_line.removeprefix("event: ")
        events.append(data)
    return events


def sdk_client(status: int, body: bytes, content_type: str = "application/json") -> openai.OpenAI:
    """The official openai SDK whose every request gets ``status`` and ``body``."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body, headers={"content-type": content_type})

    http = httpx2.Client(transport=httpx2.MockTransport(answer))
    return openai.OpenAI(api_key="k", base_url="http://gateway/v1", http_client=http, max_retries=0)


def sse_client(blocks: Iterable[bytes]) -> openai.OpenAI:
    """The SDK reading ``blocks`` as a ``text/event-stream`` answer."""
    return sdk_client(200, b"".join(blocks), "text/event-stream")
