"""The fixed bodies of the gateway benchmark, shared by every process of ``bench/run.py``.

The upstream (nginx or :mod:`static_upstream`) and the no-op app answer with these bytes, the
load generators send them. Two models keep nginx from having to read JSON: ``bench`` is served
under ``/plain`` (one 700-byte chat completion), ``bench-stream`` under ``/stream`` (one
20-event SSE stream; under ``/stream-usage`` the same stream with a usage chunk); the gateway
appends ``/v1/chat/completions`` to each backend URL.
"""

from __future__ import annotations

import json

PLAIN_MODEL = "bench"
STREAM_MODEL = "bench-stream"
#: The same two answers in Anthropic's Messages API (``bench/anthropic.py``), under
#: ``/anthropic-plain`` and ``/anthropic-stream``.
ANTHROPIC_PLAIN_MODEL = "claude-bench"
ANTHROPIC_STREAM_MODEL = "claude-bench-stream"
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


def stream(*, usage: bool = False) -> bytes:
    """An SSE body: :data:`STREAM_EVENTS` content chunks, a finish_reason chunk, ``[DONE]``.

    With ``usage``, a usage-only chunk (``"choices": []``) before ``[DONE]``: what an OpenAI
    server sends when asked ``stream_options.include_usage``, as the gateway asks a priced
    backend (``bench/run.py --spend``; the gateway does not relay that chunk).
    """
    events = [_chunk({"content": f"token{index} "}, None) for index in range(STREAM_EVENTS)]
    events.append(_chunk({}, "stop"))
    if usage:
        counts = {"prompt_tokens": 12, "completion_tokens": STREAM_EVENTS, "total_tokens": 32}
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": STREAM_MODEL,
            "choices": [],
            "usage": counts,
        }
        events.append(b"data: " + _compact(chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


def _anthropic_event(event: dict[str, object]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + _compact(event) + b"\n\n"


def anthropic_message() -> bytes:
    """An Anthropic message with the same text and usage as :func:`chat_completion`."""
    text = json.loads(chat_completion())["choices"][0]["message"]["content"]
    return _compact(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": ANTHROPIC_PLAIN_MODEL,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 100},
        }
    )


def anthropic_stream() -> bytes:
    """Anthropic's events for :data:`STREAM_EVENTS` text deltas, as its API sends them."""
    message = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_STREAM_MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    events = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": f"token{index} "}}
        for index in range(STREAM_EVENTS)
    ]  # fmt: skip
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": STREAM_EVENTS}},
        {"type": "message_stop"},
    ]  # fmt: skip
    return b"".join(_anthropic_event(event) for event in events)


def anthropic_model_list(*models: str) -> bytes:
    """Anthropic's ``GET /v1/models`` listing ``models``."""
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
        for m in models
    ]
    return _compact({"data": data, "has_more": False, "first_id": models[0], "last_id": models[-1]})


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


def messages_request(model: str) -> bytes:
    """The streaming ``POST /v1/messages`` body of ``run.py --client-apis``: the same prompt
    and token limit as :func:`chat_request` in Anthropic's Messages API."""
    return _compact(
        {
            "model": model,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "Say hello."}],
            "stream": True,
        }
    )


def responses_request(model: str) -> bytes:
    """The streaming ``POST /v1/responses`` body of ``run.py --client-apis``: the same prompt
    and token limit as :func:`chat_request` in OpenAI's Responses API."""
    return _compact(
        {
            "model": model,
            "input": "Say hello.",
            "max_output_tokens": 100,
            "stream": True,
            "store": False,
        }
    )


def upstream_routes() -> dict[str, tuple[str, bytes]]:
    """Path -> (content type, body) of every location the static upstream serves."""
    return {
        "/plain/v1/chat/completions": ("application/json", chat_completion()),
        "/stream/v1/chat/completions": ("text/event-stream", stream()),
        "/stream-usage/v1/chat/completions": ("text/event-stream", stream(usage=True)),
        "/plain/v1/models": ("application/json", model_list(PLAIN_MODEL)),
        "/stream/v1/models": ("application/json", model_list(STREAM_MODEL)),
        "/stream-usage/v1/models": ("application/json", model_list(STREAM_MODEL)),
        "/anthropic-plain/v1/messages": ("application/json", anthropic_message()),
        "/anthropic-stream/v1/messages": ("text/event-stream", anthropic_stream()),
        "/anthropic-plain/v1/models": (
            "application/json",
            anthropic_model_list(ANTHROPIC_PLAIN_MODEL),
        ),
        "/anthropic-stream/v1/models": (
            "application/json",
            anthropic_model_list(ANTHROPIC_STREAM_MODEL),
        ),
    }
