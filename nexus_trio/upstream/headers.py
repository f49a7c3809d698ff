"""Which headers cross the gateway, in each direction (docs/proxying.md#headers).

To the upstream: the client's end-to-end headers minus credentials (``Authorization``,
``X-Api-Key``, ``Api-Key``, and any header whose name says it is one: ``*-auth``, ``*-token``,
``*-api-key`` …), billing selectors (``OpenAI-Organization``, ``OpenAI-Project``,
``X-Goog-User-Project``: the backend's key decides who pays), client addresses a client could
forge (``Forwarded``, ``X-Forwarded-*``, ``X-Real-IP``), cookies, framing and our own
``X-Nexus-*``; plus the
backend's key, the request id and ``Accept-Encoding: identity`` (the gateway must be able to
read what it relays). To the client: a short allow-list of the upstream's headers — content
type, rate-limit and retry hints, OpenAI's own — and its request id renamed
``X-Upstream-Request-Id``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import httpx

#: Hop-by-hop headers (RFC 9110 §7.6.1), credentials and billing selectors, and what httpx sets
#: itself or we replace.
_DROP_TO_UPSTREAM = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"authorization",
        b"x-api-key",
        b"api-key",
        b"openai-organization",
        b"openai-project",
        b"cookie",
        b"host",
        b"content-length",
        b"accept-encoding",
        b"x-request-id",
    }
)
_DROP_PREFIXES_TO_UPSTREAM = (b"proxy-", b"x-nexus-", b"x-forwarded-")
#: Client addresses a client could forge, and billing selectors of other providers.
_DROP_NAMES_TO_UPSTREAM = frozenset({b"forwarded", b"x-real-ip", b"x-goog-user-project"})
#: A word of a header name that marks a credential (``helicone-auth``, ``x-session-token``).
_CREDENTIAL_WORDS = frozenset(
    {b"auth", b"authorization", b"token", b"secret", b"password", b"credential", b"credentials"}
    | {b"apikey", b"cookie", b"session", b"signature"}
)
#: ``<word>-key`` that is a credential (``x-goog-api-key``, ``ocp-apim-subscription-key``);
#: ``idempotency-key`` is not one.
_KEY_QUALIFIERS = frozenset({b"api", b"subscription", b"access", b"secret", b"private", b"auth"})

_RELAY_TO_CLIENT = frozenset({"content-type", "retry-after", "retry-after-ms"})
_RELAY_PREFIXES_TO_CLIENT = ("x-ratelimit-", "openai-")


def upstream_request_headers(
    client_headers: Iterable[tuple[bytes, bytes]],
    *,
    request_id: str,
    api_key: str | None,
    forward_authorization: bool,
) -> list[tuple[bytes, bytes]]:
    """The headers sent upstream for one attempt.

    Args:
        client_headers: the client's raw headers (lower-case names, as ASGI gives them).
        request_id: the gateway's request id, sent as ``X-Request-Id``.
        api_key: the backend's own key; sent as ``Authorization: Bearer`` when set.
        forward_authorization: forward the client's ``Authorization`` (never with ``api_key``).
    """
    headers = list(client_headers)
    connection_tokens = {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name == b"authorization" and forward_authorization:
            out.append((name, value))
            continue
        if (
            name in _DROP_TO_UPSTREAM
            or name in connection_tokens
            or name.startswith(_DROP_PREFIXES_TO_UPSTREAM)
            or _is_credential(name)
        ):
            continue
        out.append((name, value))
    if api_key:
        out.append((b"authorization", b"Bearer " + api_key.encode("latin-1")))
    out.append((b"x-request-id", request_id.encode("ascii")))
    out.append((b"accept-encoding", b"identity"))
    return out


@functools.lru_cache(maxsize=512)
def _is_credential(name: bytes) -> bool:
    """A credential, billing or client-address header by its name (lower case); cached, as a
    client sends the same few names with every request."""
    if name in _DROP_NAMES_TO_UPSTREAM:
        return True
    words = name.split(b"-")
    if _CREDENTIAL_WORDS.intersection(words):
        return True
    return len(words) >= 2 and words[-1] == b"key" and words[-2] in _KEY_QUALIFIERS


def client_response_headers(upstream: httpx.Headers) -> dict[str, str]:
    """The upstream response headers the client may see, from docs/proxying.md#headers's allow-list.

    Reads the raw pairs and decodes only the ones kept (usually just ``Content-Type``).
    """
    out: dict[str, str] = {}
    for raw_name, raw_value in upstream.raw:
        name = raw_name.decode("latin-1").lower()
        if name in _RELAY_TO_CLIENT or name.startswith(_RELAY_PREFIXES_TO_CLIENT):
            out[name] = raw_value.decode("latin-1")
        elif name == "x-request-id":
            out["x-upstream-request-id"] = raw_value.decode("latin-1")
    return out
