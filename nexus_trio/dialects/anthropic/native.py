"""A Messages API request relayed to an ``anthropic`` backend as the client sent it
(docs/messages-api.md): the native exchange.

The body is the client's own (only ``model`` is the served name), the headers the backend's
credentials plus those of the client's ``anthropic-beta`` features the backend allows
(``anthropic_beta``), and the answer — body, errors,
every stream event — goes back untouched, so thinking blocks, signatures and ``cache_control``
survive. The gateway still reads what it must know: a whole answer through its
chat-completions translation (:meth:`NativeMessagesExchange.readable`: usage, characters), a
stream through the same translator the translated exchange uses, whose output is only
inspected (:class:`NativeStream`: first content, usage, ``message_stop``, an ``error`` event).
A stream that breaks ends with Anthropic's ``error`` event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import httpx
import msgspec
import trio

from nexus_trio.dialects.anthropic.response import translate_response
from nexus_trio.dialects.anthropic.stream import StreamTranslator
from nexus_trio.registry import Backend
from nexus_trio.upstream.sse import SSEEvent
from nexus_trio.upstream.stream import TranslatedStream, generated_chars

_BETA = b"anthropic-beta"


def allowed_beta(client_headers: Iterable[tuple[bytes, bytes]], allowed: list[str]) -> bytes:
    """The client's ``anthropic-beta`` flags the backend allows (``anthropic_beta``), in the
    client's order, comma-separated; empty when none is (every other flag is dropped: a beta
    feature may cost the operator's account more, or reach other services)."""
    wanted = [
        flag.strip()
        for name, value in client_headers
        if name == _BETA
        for flag in value.decode("latin-1").split(",")
    ]
    return ",".join(flag for flag in wanted if flag in allowed).encode("latin-1")


_ENCODER = msgspec.json.Encoder()


def error_event(message: str) -> bytes:
    """Anthropic's stream ``error`` event (``api_error``) saying ``message``."""
    payload = {"type": "error", "error": {"type": "api_error", "message": message}}
    return b"event: error\ndata: " + _ENCODER.encode(payload) + b"\n\n"


class NativeStream(TranslatedStream):
    """Anthropic's events relayed as they are, read through the translator."""

    def take(self, events: list[SSEEvent]) -> bytes:
        translator = self.translator
        out: list[bytes] = []
        for event in events:
            if event.data is not None:
                self.content_chars += generated_chars(translator.feed(event.data))
                if translator.content_started and self.first_content_at is None:
                    self.first_content_at = trio.current_time()
                if translator.failed:
                    break  # the relay ends the stream with the gateway's own error event
            out.append(event.raw)
            if translator.done:
                break
        self.done = translator.done
        self.failed = translator.failed
        self.usage = translator.usage_so_far()
        return b"".join(out)

    def ending(self, reason: str | None, message: str) -> bytes:
        return b"" if reason is None else error_event(message)


class NativeMessagesExchange:
    """One attempt of a Messages request to an ``anthropic`` backend, untranslated."""

    native = True

    def __init__(
        self,
        path: str,
        body: bytes,
        credentials: dict[str, str],
        beta: bytes,
        request_id: str,
        client_answer_headers: Callable[[httpx.Headers], dict[str, str]],
    ) -> None:
        self.path = path
        self.body = body
        self._headers = [
            (b"content-type", b"application/json"),
            *((name.encode(), value.encode("latin-1")) for name, value in credentials.items()),
            (b"x-request-id", request_id.encode("ascii")),
            (b"accept-encoding", b"identity"),
        ]
        if beta:
            self._headers.append((_BETA, beta))
        self._client_answer_headers = client_answer_headers

    def headers(self) -> list[tuple[bytes, bytes]]:
        return self._headers

    @staticmethod
    def readable(data: bytes) -> bytes:
        """The chat-completions form of Anthropic's message, for usage and characters."""
        return translate_response(data, created=0)

    def answer(
        self, status: int, data: bytes, upstream: httpx.Headers
    ) -> tuple[int, dict[str, str], bytes]:
        """Anthropic's answer as it is: a message, or an error in Anthropic's envelope."""
        return status, self._client_answer_headers(upstream), data

    @staticmethod
    def stream(response: httpx.Response, backend: Backend, *, sent_at: float) -> NativeStream:
        translator = StreamTranslator(created=0, include_usage=False)
        return NativeStream(response, backend, sent_at=sent_at, translator=translator)
