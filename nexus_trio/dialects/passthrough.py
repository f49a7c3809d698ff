"""The pass-through dialect: a backend that speaks OpenAI's API gets the client's bytes.

The body goes upstream as the client sent it (the caller has already replaced ``model`` or
asked for usage where it must), with the client's end-to-end headers minus credentials and
the backend's own key (:func:`~nexus_trio.upstream.headers.upstream_request_headers`); the
answer comes back untouched but for the headers the client may see.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from nexus_trio.dialects.base import ClientBody
from nexus_trio.dialects.context_fit import fitted_max_tokens
from nexus_trio.dialects.reach import responses_body
from nexus_trio.dialects.responses.native import (
    NativeResponsesStream,
    chat_form,
    without_store,
)
from nexus_trio.dialects.system_first import merged_system
from nexus_trio.registry import Backend, Capabilities
from nexus_trio.upstream.headers import client_response_headers, upstream_request_headers
from nexus_trio.upstream.stream import UpstreamStream

#: The Responses API's path, which ``responses_api`` backends serve themselves.
RESPONSES_PATH = "/v1/responses"
CHAT_PATH = "/v1/chat/completions"


class PassThroughExchange:
    """One attempt to an OpenAI-compatible backend."""

    __slots__ = ("_headers", "_strip_usage", "body", "path")
    native = False

    def __init__(
        self, path: str, body: bytes, headers: list[tuple[bytes, bytes]], *, strip_usage: bool
    ) -> None:
        self.path = path
        self.body = body
        self._headers = headers
        self._strip_usage = strip_usage

    def headers(self) -> list[tuple[bytes, bytes]]:
        return self._headers

    @staticmethod
    def readable(data: bytes) -> bytes:
        return data

    @staticmethod
    def answer(
        status: int, data: bytes, upstream: httpx.Headers
    ) -> tuple[int, dict[str, str], bytes]:
        return status, client_response_headers(upstream), data

    def stream(
        self, response: httpx.Response, backend: Backend, *, sent_at: float
    ) -> UpstreamStream:
        return UpstreamStream(response, backend, sent_at=sent_at, strip_usage=self._strip_usage)


class NativeResponsesExchange:
    """One attempt of a Responses API request to a backend that serves that API itself: sent
    and answered untranslated (:mod:`nexus_trio.dialects.responses.native` reads it)."""

    __slots__ = ("_headers", "body")
    path = RESPONSES_PATH
    native = True

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self._headers = headers

    def headers(self) -> list[tuple[bytes, bytes]]:
        return self._headers

    @staticmethod
    def readable(data: bytes) -> bytes:
        return chat_form(data)

    @staticmethod
    def answer(
        status: int, data: bytes, upstream: httpx.Headers
    ) -> tuple[int, dict[str, str], bytes]:
        return status, client_response_headers(upstream), data

    @staticmethod
    def stream(
        response: httpx.Response, backend: Backend, *, sent_at: float
    ) -> NativeResponsesStream:
        return NativeResponsesStream(response, backend, sent_at=sent_at)


class PassThrough:
    """OpenAI's API, spoken by every backend type but ``anthropic``."""

    reports_stream_usage = False
    models_path = "/v1/models"
    listed_capabilities: Capabilities | None = None

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
    ) -> PassThroughExchange | NativeResponsesExchange:
        headers = upstream_request_headers(
            client_headers,
            request_id=request_id,
            api_key=backend.api_key,
            forward_authorization=backend.config.forward_authorization,
        )
        if (
            client_body is not None
            and client_body.native_path == RESPONSES_PATH
            and backend.config.responses_api
        ):
            native = responses_body(client_body.native_body(model), backend.config)
            return NativeResponsesExchange(without_store(native), headers)
        if client_body is not None and path == CHAT_PATH:  # translated from a client API
            body = fitted_max_tokens(body, backend.capabilities(model).context_length)
        if backend.config.merge_system_messages and path == CHAT_PATH:
            body = merged_system(body)
        return PassThroughExchange(path, body, headers, strip_usage=strip_usage)

    @staticmethod
    def probe_headers(backend: Backend) -> dict[str, str]:
        return {"authorization": f"Bearer {backend.api_key}"} if backend.api_key else {}

    @staticmethod
    def output_allowance(backend: Backend, default: int) -> int:
        return default
