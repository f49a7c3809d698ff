"""What every request must pass before any route runs (docs/api.md#routes,
docs/operations.md#security): pure checks on the ASGI scope.

* The **target** is one canonical absolute path: no ``//``, no encoded ``/`` or ``\\``, no
  dot segment (plain or percent-encoded), nothing but an origin-form target. The router
  (werkzeug) cleans paths before matching them; the gate refuses every target it would have to
  clean, so the path that is authorised is the path that is routed.
* The **framing** is unambiguous: ``Content-Length`` together with ``Transfer-Encoding`` is
  refused (RFC 9112 §6.1), and the caller closes the connection.
* The **host** is one of ``server.allowed_hosts``.
* The **listener** serves the path: the admin listener its routes and the probes, the public
  one with ``[admin] only = true`` everything else (docs/operations.md#admin-listener).
* The **access** a route needs — none, a key, an admin key — comes from one table, and anything
  not listed as open needs a key (deny by default).

Nothing here reads a key or does I/O; :class:`~nexus_trio.api.middleware.GatewayASGI` applies the
verdicts in order.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence

from nexus_trio import errors
from nexus_trio.asgi.listener import Listener

#: Routes served without a key, by path; every method the route answers (GET, HEAD).
OPEN_PATHS = frozenset({"/health", "/health/live", "/", "/dashboard"})
#: The dashboard page's own files (HTML, CSS, JS: no data) are open too.
OPEN_PREFIX = "/dashboard/"
#: Served to admin keys only, unless ``[metrics] public = true``.
METRICS_PATH = "/metrics"
#: The operator's routes (``/admin/...``): admin keys only, whatever else is configured.
ADMIN_PREFIX = "/admin/"

#: This process's own numbers and page, served on the admin listener (with ``ADMIN_PREFIX``,
#: ``OPEN_PREFIX`` and ``GET /``); the last is the dashboard's event stream.
ADMIN_LISTENER_PATHS = frozenset({METRICS_PATH, "/v1/stats", "/dashboard", "/v1/dashboard/events"})
#: The probes, served on every listener.
PROBE_PATHS = frozenset({"/health", "/health/live"})

_ENCODED_SEPARATOR = re.compile(rb"%(2f|5c)", re.IGNORECASE)
_ENCODED_DOT = re.compile(rb"%2e", re.IGNORECASE)


class Access(enum.Enum):
    """What a route needs from the request's key when inbound keys are configured."""

    OPEN = "open"
    KEY = "key"
    ADMIN = "admin"


def target_problem(raw_path: bytes, path: str) -> str | None:
    """Why this request target is refused, or None when it is one canonical path.

    ``raw_path`` is the target as sent (without the query), ``path`` the server's decoded one.
    """
    if not raw_path.startswith(b"/"):
        return "the request target must be an absolute path (origin form), e.g. /v1/models"
    if b"//" in raw_path or "//" in path:
        return "the request path contains an empty segment ('//')"
    if _ENCODED_SEPARATOR.search(raw_path) or "\\" in path:
        return "the request path contains an encoded '/' or a '\\'"
    segments = _ENCODED_DOT.sub(b".", raw_path).split(b"/")
    if any(segment in (b".", b"..") for segment in segments):
        return "the request path contains a dot segment ('.' or '..')"
    return None


def framing_problem(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Why the body's framing is refused: ``Content-Length`` with ``Transfer-Encoding``."""
    length = chunked = False
    for name, _ in headers:
        length = length or name == b"content-length"
        chunked = chunked or name == b"transfer-encoding"
    if length and chunked:
        return "Content-Length and Transfer-Encoding together are ambiguous; send one of them"
    return None


def host_of(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``Host`` header's host, lower-case and without the port; None without one."""
    for name, value in headers:
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):
                return host.partition("]")[0] + "]"
            return host.rpartition(":")[0] if ":" in host else host
    return None


def host_allowed(host: str | None, allowed: Sequence[str]) -> bool:
    """Whether ``host`` matches ``server.allowed_hosts`` (``*``: anything, even no host)."""
    if "*" in allowed:
        return True
    if not host:
        return False
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def access_of(path: str, *, metrics_public: bool) -> Access:
    """What the route at ``path`` needs when inbound keys are configured."""
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIX):
        return Access.OPEN
    if path == METRICS_PATH:
        return Access.OPEN if metrics_public else Access.ADMIN
    if path.startswith(ADMIN_PREFIX):
        return Access.ADMIN
    return Access.KEY


def listener_serves(listener: Listener, method: str, path: str) -> bool:
    """Whether ``listener`` serves ``path`` (docs/operations.md#admin-listener); ``HEAD /`` is
    a probe (docs/api.md#routes), ``GET /`` the dashboard page."""
    if listener is Listener.SHARED or path in PROBE_PATHS or (path == "/" and method == "HEAD"):
        return True
    admin = (
        path in ADMIN_LISTENER_PATHS or path.startswith((ADMIN_PREFIX, OPEN_PREFIX)) or path == "/"
    )
    return admin == (listener is Listener.ADMIN)


def check_request(
    raw_path: bytes,
    path: str,
    headers: Sequence[tuple[bytes, bytes]],
    allowed_hosts: Sequence[str],
) -> errors.APIError | None:
    """The first of the target, framing and host checks the request fails, or None."""
    problem = target_problem(raw_path, path)
    if problem is not None:
        return errors.InvalidTarget(f"Invalid request target: {problem}.")
    problem = framing_problem(headers)
    if problem is not None:
        return errors.AmbiguousFraming(f"{problem}.", headers={"Connection": "close"})
    if not host_allowed(host_of(headers), allowed_hosts):
        return errors.HostNotAllowed("The Host header names a host this gateway does not serve.")
    return None


#: The most of a ``User-Agent`` kept for the access log.
MAX_USER_AGENT_CHARS = 256


def user_agent(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``User-Agent`` header, its first :data:`MAX_USER_AGENT_CHARS` characters; None."""
    for name, value in headers:
        if name == b"user-agent":
            return value[:MAX_USER_AGENT_CHARS].decode("latin-1")
    return None


def is_json(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether ``Content-Type`` is JSON: ``application/json`` or ``application/*+json``."""
    for name, value in headers:
        if name == b"content-type":
            media = value.partition(b";")[0].strip().lower()
            return media == b"application/json" or (
                media.startswith(b"application/") and media.endswith(b"+json")
            )
    return False
