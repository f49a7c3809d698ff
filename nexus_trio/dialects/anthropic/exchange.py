"""The Anthropic dialect: what the attempt path and the health checker ask of an ``anthropic``
backend.

One :class:`AnthropicExchange` per attempt turns the client's chat request into the Messages
API request (path, body and the complete header list: ``x-api-key``, ``anthropic-version``;
nothing of the client's, so its ``Authorization`` never leaves), and Anthropic's answers —
bodies, stream events, errors — back into OpenAI's. Pure and sync.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import httpx

from nexus_trio import errors
from nexus_trio.dialects.anthropic.errors import translate_error
from nexus_trio.dialects.anthropic.native import NativeMessagesExchange, allowed_beta
from nexus_trio.dialects.anthropic.request import translate_request
from nexus_trio.dialects.anthropic.response import translate_response
from nexus_trio.dialects.anthropic.stream import StreamTranslator
from nexus_trio.dialects.base import ClientBody
from nexus_trio.dialects.reach import messages_body
from nexus_trio.registry import TYPE_CAPABILITIES, Backend, Capabilities
from nexus_trio.upstream.stream import TranslatedStream, UpstreamStream

__all__ = ["ANTHROPIC_MAX_TOKENS", "ANTHROPIC_VERSION", "MESSAGES_PATH", "Anthropic"]

MESSAGES_PATH = "/v1/messages"
#: The ``anthropic-version`` header unless a backend sets ``anthropic_version``.
ANTHROPIC_VERSION = "2023-06-01"
#: ``max_tokens`` when the client sends none, unless a backend sets ``default_max_tokens``.
ANTHROPIC_MAX_TOKENS = 4096
_CHAT_PATH = "/v1/chat/completions"


class AnthropicExchange:
    """One attempt's request, translated for an ``anthropic`` backend, and its way back."""

    path = MESSAGES_PATH
    native = False

    def __init__(self, backend: Backend, path: str, body: bytes, model: str, request_id: str):
        """Translate the client's request on ``path`` for ``model`` on ``backend``.

        Raises:
            InvalidValue: not a chat request, or one Anthropic cannot serve (names the field).
        """
        if path != _CHAT_PATH:
            raise errors.InvalidValue(
                f"Backend '{backend.name}' (Anthropic) serves only {_CHAT_PATH}."
            )
        max_tokens = Anthropic.output_allowance(backend, ANTHROPIC_MAX_TOKENS)
        translated = translate_request(body, model=model, default_max_tokens=max_tokens)
        #: The Messages API request body.
        self.body = translated.body
        self._include_usage = translated.include_usage
        credentials = Anthropic.probe_headers(backend).items()
        self._headers = [
            (b"content-type", b"application/json"),
            *((name.encode(), value.encode("latin-1")) for name, value in credentials),
            (b"x-request-id", request_id.encode("ascii")),
            (b"accept-encoding", b"identity"),
        ]

    def headers(self) -> list[tuple[bytes, bytes]]:
        return self._headers

    @staticmethod
    def readable(data: bytes) -> bytes:
        return data  # translated to chat completions already

    def answer(
        self, status: int, data: bytes, upstream: httpx.Headers
    ) -> tuple[int, dict[str, str], bytes]:
        """The client's status, headers and OpenAI body for Anthropic's whole answer.

        Raises:
            BadUpstreamResponse: a 2xx body that is not an Anthropic message.
        """
        if 200 <= status < 300:
            status, data = status, translate_response(data, created=int(time.time()))
        else:
            status, data = translate_error(status, data)
        return status, _client_headers(upstream), data

    def stream(
        self, response: httpx.Response, backend: Backend, *, sent_at: float
    ) -> UpstreamStream:
        translator = StreamTranslator(created=int(time.time()), include_usage=self._include_usage)
        return TranslatedStream(response, backend, sent_at=sent_at, translator=translator)


def _client_headers(upstream: httpx.Headers) -> dict[str, str]:
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


class Anthropic:
    """Anthropic's Messages API (docs/routing.md#backend-types)."""

    #: Translated streams always carry usage (``message_start``/``message_delta``).
    reports_stream_usage = True
    models_path = "/v1/models?limit=1000"
    listed_capabilities: Capabilities | None = TYPE_CAPABILITIES["anthropic"]

    @staticmethod
    def exchange(
        backend: Backend,
        path: str,
        body: bytes,
        model: str,
        *,
        client_headers: Iterable[tuple[bytes, bytes]],
        request_id: str,
        strip_usage: bool,
        client_body: ClientBody | None = None,
    ) -> AnthropicExchange | NativeMessagesExchange:
        if client_body is not None and client_body.native_path == MESSAGES_PATH:
            return NativeMessagesExchange(
                MESSAGES_PATH,
                messages_body(client_body.native_body(model), backend.config),
                Anthropic.probe_headers(backend),
                allowed_beta(client_headers, backend.config.anthropic_beta),
                request_id,
                _client_headers,
            )
        return AnthropicExchange(backend, path, body, model, request_id)

    @staticmethod
    def probe_headers(backend: Backend) -> dict[str, str]:
        return {
            "x-api-key": backend.api_key or "",
            "anthropic-version": backend.config.anthropic_version or ANTHROPIC_VERSION,
        }

    @staticmethod
    def output_allowance(backend: Backend, default: int) -> int:
        """Anthropic needs ``max_tokens``: the backend's ``default_max_tokens``, else 4096."""
        return backend.config.default_max_tokens or ANTHROPIC_MAX_TOKENS
