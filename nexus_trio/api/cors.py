"""Cross-origin requests from browsers (docs/api.md#cors): ``server.cors_origins``.

Without configured origins no response carries a CORS header, so a browser page on another
origin can neither read an answer nor send a request that needs a preflight (JSON bodies,
``Authorization``). With origins configured, a preflight from one of them is answered 204 (no
key needed: browsers send none with it), one from another origin is 403
``origin_not_allowed``, and every answer to an allowed origin names it in
``Access-Control-Allow-Origin`` and exposes the gateway's headers. Pure functions of the headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: Response headers a browser script may read (the rest stay hidden from it).
_EXPOSED = (
    b"x-request-id, x-nexus-backend, x-nexus-backend-type, x-nexus-model, x-nexus-route-reason,"
    b" x-nexus-attempts, x-nexus-privacy-zone, x-nexus-fallback-model, x-nexus-cost-usd,"
    b" x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests,"
    b" x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens,"
    b" retry-after, x-should-retry"
)
_METHODS = b"GET, HEAD, POST, PATCH, DELETE"
#: A preflight's answer is cached this long by the browser.
_MAX_AGE = b"600"
#: What a preflight may ask to send: header names, comma-separated, bounded.
_HEADER_LIST = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
_MAX_HEADER_LIST = 1024


def origin_of(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The request's ``Origin`` header, or None."""
    for name, value in headers:
        if name == b"origin":
            return value
    return None


def is_preflight(method: str, headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """An ``OPTIONS`` request with ``Origin`` and ``Access-Control-Request-Method``."""
    if method != "OPTIONS":
        return False
    names = {name for name, _ in headers}
    return b"origin" in names and b"access-control-request-method" in names


def allowed(origin: bytes | None, origins: Sequence[str]) -> bool:
    """Whether ``origin`` is one of ``server.cors_origins`` (``*``: any origin)."""
    if origin is None or not origins:
        return False
    text = origin.decode("latin-1").lower()
    return any(entry == "*" or entry.lower() == text for entry in origins)


def response_headers(origin: bytes) -> list[tuple[bytes, bytes]]:
    """The CORS headers of an answer to an allowed ``origin``."""
    return [
        (b"access-control-allow-origin", origin),
        (b"vary", b"Origin"),
        (b"access-control-expose-headers", _EXPOSED),
    ]


def preflight_headers(
    origin: bytes, headers: Sequence[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The headers of the 204 answering an allowed preflight: methods, asked headers, max age."""
    out = [
        (b"access-control-allow-origin", origin),
        (b"vary", b"Origin"),
        (b"access-control-allow-methods", _METHODS),
        (b"access-control-max-age", _MAX_AGE),
    ]
    for name, value in headers:
        if name == b"access-control-request-headers":
            value = value.strip()
            if len(value) <= _MAX_HEADER_LIST and _HEADER_LIST.fullmatch(value):
                out.append((b"access-control-allow-headers", value))
            break
    return out
