"""Generated answers of the simulated backend: completions (whole or as SSE) and embeddings.

Sans-I/O like :mod:`nexus_trio.simulator.payloads`: it renders bytes; the server decides when
to send them and how to fail.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from typing import Any

import msgspec

from nexus_trio.simulator.payloads import EMBEDDING_DIMENSIONS, InferenceRequest

_WORDS: tuple[str, ...] = tuple(
    re.findall(r" ?[^ ]+", "Hello from the simulated backend, one token at a time.")
)
DONE_EVENT = b"data: [DONE]\n\n"
_encode = msgspec.json.Encoder().encode


def token(index: int) -> str:
    """Return the text of generated token number ``index`` (a fixed, repeating sentence)."""
    return _WORDS[index % len(_WORDS)]


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _vector(item: object) -> list[float]:
    digest = hashlib.blake2b(_encode(item), digest_size=EMBEDDING_DIMENSIONS).digest()
    return [round(byte / 127.5 - 1.0, 4) for byte in digest]


def _base64_vector(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: "base64"``: the little-endian float32 bytes, in base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings(request: InferenceRequest) -> bytes:
    """Return an OpenAI embeddings response: one deterministic vector per input item.

    Vectors are lists of floats, or base64 strings when the request asks for
    ``encoding_format: "base64"`` (which the official Node SDK does by default).
    """
    as_base64 = request.encoding_format == "base64"
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _base64_vector(vector) if as_base64 else vector,
        }
        for index, vector in enumerate(map(_vector, request.embedding_inputs))
    ]
    prompt_tokens = request.prompt_tokens
    return _encode(
        {
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
    )


class Completion:
    """One chat or text completion answer, rendered whole or as SSE events.

    The answer is text (``completion_tokens`` tokens from :func:`token`), or, for a chat request
    that offers tools and holds no tool result yet (:attr:`InferenceRequest.tool`), one call to
    the first tool's function with arguments ``"{}"``; ``usage`` reports ``completion_tokens``
    either way. As a stream it is a start event (empty content, as
    OpenAI sends), :attr:`event_count` content events and the end events (finish chunk, usage
    chunk if ``stream_options.include_usage``, ``[DONE]``).
    """

    __slots__ = (
        "_call",
        "_chat",
        "_chunk_head",
        "_head",
        "_include_usage",
        "_usage",
        "completion_tokens",
        "event_count",
    )

    def __init__(
        self,
        request: InferenceRequest,
        *,
        chat: bool,
        ident: str,
        created: int,
        completion_tokens: int,
    ) -> None:
        """Describe the answer to ``request``; nothing is encoded yet."""
        self._chat = chat
        self._call: dict[str, Any] | None = None
        if chat and request.tool is not None:
            function = {"name": request.tool, "arguments": "{}"}
            self._call = {"id": f"call_{ident}", "type": "function", "function": function}
        self._usage = _usage(request.prompt_tokens, completion_tokens)
        self._include_usage = request.include_usage
        self.completion_tokens = completion_tokens
        self.event_count = completion_tokens if self._call is None else 1
        self._head = {
            "id": ident,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": request.model,
        }
        chunk_kind = "chat.completion.chunk" if chat else "text_completion"
        self._chunk_head = {**self._head, "object": chunk_kind}

    @property
    def _finish_reason(self) -> str:
        return "stop" if self._call is None else "tool_calls"

    def body(self) -> bytes:
        """Return the non-streaming JSON response, ``usage`` included."""
        text = "".join(token(index) for index in range(self.completion_tokens))
        choice: dict[str, Any]
        if not self._chat:
            choice = {"index": 0, "text": text, "logprobs": None}
        elif self._call is None:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        else:
            message = {"role": "assistant", "content": None, "tool_calls": [self._call]}
            choice = {"index": 0, "message": message}
        choice["finish_reason"] = self._finish_reason
        return _encode({**self._head, "choices": [choice], "usage": self._usage})

    def _event(self, choices: list[dict[str, Any]], **extra: object) -> bytes:
        return b"data: " + _encode({**self._chunk_head, "choices": choices, **extra}) + b"\n\n"

    def _delta_event(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        if self._chat:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        else:
            text = delta.get("content", "")
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return self._event([choice])

    def start_event(self) -> bytes:
        """Return the first event: role ``assistant`` with empty content (``text: ""``)."""
        return self._delta_event({"role": "assistant", "content": ""})

    def content_event(self, index: int) -> bytes:
        """Return content event ``index`` (< :attr:`event_count`): a token or the tool call."""
        if self._call is None:
            return self._delta_event({"content": token(index)})
        return self._delta_event({"tool_calls": [{"index": 0, **self._call}]})

    def end_events(self) -> bytes:
        """Return the finish chunk, the usage chunk if the request asked, and ``data: [DONE]``."""
        finish = self._delta_event({}, self._finish_reason)
        usage = self._event([], usage=self._usage) if self._include_usage else b""
        return finish + usage + DONE_EVENT
