"""The Anthropic dialect: what the attempt path asks of an ``anthropic`` backend.

One :class:`AnthropicDialect` per attempt: it turns the client's chat request into the
Messages API request (path, body and the complete header list: ``x-api-key``,
``anthropic-version``; nothing of the client's, so its ``Authorization`` never leaves), and
Anthropic's answers — bodies, stream events, errors — back into OpenAI's. Pure and sync.
"""

from __future__ import annotations

import httpx

from nexus_trio import errors
from nexus_trio.cloud.anthropic.errors import translate_error
from nexus_trio.cloud.anthropic.request import translate_request
from nexus_trio.cloud.anthropic.response import translate_response
from nexus_trio.cloud.anthropic.stream import StreamTranslator
from nexus_trio.config import ANTHROPIC_MAX_TOKENS, ANTHROPIC_VERSION
from nexus_trio.registry import Backend

__all__ = ["MESSAGES_PATH", "AnthropicDialect"]

MESSAGES_PATH = "/v1/messages"
_CHAT_PATH = "/v1/chat/completions"


class AnthropicDialect:
    """One attempt's request, translated for an ``anthropic`` backend, and its way back."""

    path = MESSAGES_PATH

    def __init__(self, backend: Backend, path: str, body: bytes, model: str) -> None:
        """Translate the client's request on ``path`` for ``model`` on ``backend``.

        Raises:
            InvalidValue: not a chat request, or one Anthropic cannot serve (names the field).
        """
        config = backend.config
        if path != _CHAT_PATH:
            raise errors.InvalidValue(
                f"Backend '{backend.name}' (Anthropic) serves only {_CHAT_PATH}."
            )
        max_tokens = config.default_max_tokens or ANTHROPIC_MAX_TOKENS
        translated = translate_request(body, model=model, default_max_tokens=max_tokens)
        #: The Messages API request body.
        self.body = translated.body
        self.include_usage = translated.include_usage
        self._version = (config.anthropic_version or ANTHROPIC_VERSION).encode("latin-1")
        self._key = (backend.api_key or "").encode("latin-1")

    def headers(self, request_id: str) -> list[tuple[bytes, bytes]]:
        """Every header of the upstream request except ``Host`` and ``Content-Length``."""
        return [
            (b"content-type", b"application/json"),
            (b"x-api-key", self._key),
            (b"anthropic-version", self._version),
            (b"x-request-id", request_id.encode("ascii")),
            (b"accept-encoding", b"identity"),
        ]

    @staticmethod
    def response(status: int, body: bytes, *, created: int) -> tuple[int, bytes]:
        """The client's status and OpenAI body for Anthropic's whole answer.

        Raises:
            BadUpstreamResponse: a 2xx body that is not an Anthropic message.
        """
        if 200 <= status < 300:
            return status, translate_response(body, created=created)
        return translate_error(status, body)

    @staticmethod
    def client_headers(upstream: httpx.Headers) -> dict[str, str]:
        """What the client sees of Anthropic's headers: retry hints and its request id."""
        out = {"content-type": "application/json"}
        for name in ("retry-after", "retry-after-ms"):
            value = upstream.get(name)
            if value is not None:
                out[name] = value
        request_id = upstream.get("request-id")
        if request_id is not None:
            out["x-upstream-request-id"] = request_id
        return out

    def stream_translator(self, *, created: int) -> StreamTranslator:
        """A translator for the stream answering this request."""
        return StreamTranslator(created=created, include_usage=self.include_usage)
