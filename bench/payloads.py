"""The fixed bodies of the gateway benchmark, shared by every process of ``bench/run.py``.

The upstream (nginx or :mod:`static_upstream`) and the no-op app answer with these bytes, the
load generators send them. Two models keep nginx from having to read JSON: ``bench`` is served
under ``/plain`` (one 700-byte chat completion), ``bench-stream`` under ``/stream`` (one
20-event SSE stream); the gateway appends ``/v1/chat/completions`` to each backend URL.
"""

from __future__ import annotations

import json

PLAIN_MODEL = "bench"
STREAM_MODEL = "bench-stream"
#: Size of the non-streaming chat completion, in bytes.
COMPLETION_BYTES = 700
#: Content events in one stream (a finish_reason chunk and ``[DONE]`` follow them).
STREAM_EVENTS = 20
_CREATED = 1_700_000_000


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def chat_completion() -> bytes:
    """An OpenAI chat completion of exactly :data:`COMPLETION_BYTES` bytes."""

    def build(content: str) -> bytes:
        return _compact(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": _CREATED,
                "model": PLAIN_MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 12, "completion_tokens": 100, "total_tokens": 112},
            }
        )

    padding = COMPLETION_BYTES - len(build(""))
    words = ("lorem ipsum dolor sit amet " * (padding // 27 + 1))[:padding]
    return build(words)


def _chunk(delta: dict[str, str], finish_reason: str | None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": STREAM_MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return b"data: " + _compact(chunk) + b"\n\n"


def stream() -> bytes:
    """An SSE body: :data:`STREAM_EVENTS` content chunks, a finish_reason chunk, ``[DONE]``."""
    events = [_chunk({"content": f"token{index} "}, None) for index in range(STREAM_EVENTS)]
    events.append(_chunk({}, "stop"))
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


def model_list(model: str) -> bytes:
    """``GET /v1/models`` of a backend that serves ``model`` (the gateway's health probe)."""
    return _compact(
        {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "bench"}]}
    )


def chat_request(model: str, *, streaming: bool) -> bytes:
    """The request body the load generator sends for ``model``."""
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 100,
    }
    if streaming:
        body["stream"] = True
    return _compact(body)


def upstream_routes() -> dict[str, tuple[str, bytes]]:
    """Path -> (content type, body) of every location the static upstream serves."""
    return {
        "/plain/v1/chat/completions": ("application/json", chat_completion()),
        "/stream/v1/chat/completions": ("text/event-stream", stream()),
        "/plain/v1/models": ("application/json", model_list(PLAIN_MODEL)),
        "/stream/v1/models": ("application/json", model_list(STREAM_MODEL)),
    }
