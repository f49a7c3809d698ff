"""What a proxy request answers, and how an answer goes out over ASGI.

A :class:`Reply` is the gateway's own response value: status, raw header pairs, and either a
complete body or a pump that writes a streamed body piece by piece (a committed stream's
relay). The proxy
routes build replies and send them straight to the ASGI server; every error, on every route,
is rendered once by :func:`error_reply`, so the envelope cannot differ between the ASGI layer
and the Quart routes.

Sending: the final body message goes out under a shielded scope. hypercorn does its
end-of-response bookkeeping (closing on ``Connection: close``, arming the keep-alive timer)
inside that ``send``; an interrupted final send leaves the connection open forever. A
streamed body's pump is handed a ``write``: pieces are written by
:mod:`~nexus_trio.asgi.direct_writer` when the server is hypercorn's trio HTTP/1.1 path on a
plain socket, else sent through ``send``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import msgspec
import trio
from hypercorn.typing import ASGISendCallable, ASGISendEvent

from nexus_trio import errors
from nexus_trio.asgi.direct_writer import direct_writer

Headers = list[tuple[bytes, bytes]]
#: Writes one piece of a streamed body (an empty one writes nothing).
Write = Callable[[bytes], Awaitable[None]]
#: A streamed body: writes every piece with the ``Write`` it is handed, then returns.
Pump = Callable[[Write], Awaitable[None]]

_ENCODER = msgspec.json.Encoder()
_JSON = (b"content-type", b"application/json")


def encode_headers(headers: Mapping[str, str]) -> Headers:
    """ASGI header pairs from a ``name → value`` mapping (names lower-cased)."""
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


@dataclass(slots=True)
class Reply:
    """A response ready to send: ``body`` when complete, ``pump`` when streamed."""

    status: int
    headers: Headers
    body: bytes = b""
    pump: Pump | None = None

    @classmethod
    def complete(cls, status: int, headers: Mapping[str, str], body: bytes) -> Reply:
        """A whole body with its ``Content-Length``."""
        pairs = encode_headers(headers)
        pairs.append((b"content-length", str(len(body)).encode()))
        return cls(status, pairs, body)

    @classmethod
    def streamed(cls, status: int, headers: Mapping[str, str], pump: Pump) -> Reply:
        """A body that ``pump`` writes piece by piece (chunked transfer encoding)."""
        return cls(status, encode_headers(headers), pump=pump)

    async def send(self, send: ASGISendCallable, extra_headers: Headers) -> None:
        """Send the whole response; the final body message under a shielded scope.

        Blocks while the client reads (flow control). A streamed body's pump runs once the
        head is sent (never, if sending the head fails or is cancelled).
        """
        start: ASGISendEvent = {
            "type": "http.response.start",
            "status": self.status,
            "headers": self.headers + extra_headers,
            "trailers": False,
        }
        await send(start)
        if self.pump is not None:
            writer = direct_writer(send)
            await self.pump(_sender(send) if writer is None else writer.write)
        with trio.CancelScope(shield=True):
            await send({"type": "http.response.body", "body": self.body, "more_body": False})


def _sender(send: ASGISendCallable) -> Write:
    """Body pieces through the ASGI ``send`` itself (any server, test clients included)."""

    async def write(chunk: bytes) -> None:
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    return write


def error_reply(error: errors.APIError) -> Reply:
    """The response for one of our errors: the OpenAI envelope (docs/api.md#errors), or the
    upstream's own status and body for an error passed through as-is (docs/proxying.md#retries)."""
    if isinstance(error, errors.UpstreamStatusError):
        return Reply.complete(error.upstream_status, error.headers, error.body)
    body = _ENCODER.encode(error.envelope())
    headers = encode_headers(error.headers)
    headers += [_JSON, (b"content-length", str(len(body)).encode())]
    return Reply(error.status, headers, body)
