"""The upstream client: one httpx ``AsyncClient`` for every backend, errors translated once.

The supervisor owns the ``AsyncClient`` (and so its connection pool) and passes it in; tests
swap its transport for ``httpx.MockTransport``. Callers own timeouts:
they wrap calls in ``trio.fail_after``/``move_on_at`` and translate ``TooSlowError`` where
they catch it. The only timeout configured here is the connect timeout, which httpx must
know to tell a slow connect from a slow answer.
"""

from __future__ import annotations

import http.cookiejar
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from nexus_trio import errors
from nexus_trio.registry import Backend
from nexus_trio.upstream.transport import (
    ON_SEND_EXTENSION,
    POOL_EXTENSION,
    KeepAliveTransport,
    PoolSpec,
    StaleConnectionError,
)


def translate_error(exc: httpx.HTTPError, backend: Backend) -> errors.UpstreamError:
    """Map an httpx exception to our tree; the message names the backend, never its URL."""
    name = backend.name
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return errors.UpstreamConnectError(f"Backend '{name}' could not be reached.")
    if isinstance(exc, httpx.TimeoutException):
        return errors.BackendTimeout(f"Backend '{name}' timed out.")
    if isinstance(exc, StaleConnectionError) or (
        isinstance(exc, httpx.RemoteProtocolError) and "without sending" in str(exc)
    ):
        # A keep-alive connection the backend had closed (ours, or httpcore's wording).
        return errors.UpstreamReset(
            f"Backend '{name}' closed the connection before responding.",
            before_response=True,
            reused_connection=True,
        )
    if isinstance(exc, httpx.TransportError):
        return errors.UpstreamReset(f"Backend '{name}' closed the connection unexpectedly.")
    return errors.BackendUnavailable(f"Backend '{name}' failed.")


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Never store a backend's cookies: the client is shared by every client request."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


def upstream_http_client(
    transport: httpx.AsyncBaseTransport,
    mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> httpx.AsyncClient:
    """The one ``httpx.AsyncClient`` the gateway shares across every client request.

    Its cookie jar never stores anything: httpx keeps every ``Set-Cookie`` it sees and sends
    it back on later requests to that host, which on a gateway would replay one client's
    session cookie on another client's request.
    """
    jar = http.cookiejar.CookieJar(policy=_NoCookies())
    return httpx.AsyncClient(transport=transport, mounts=dict(mounts or {}), cookies=jar)


@dataclass(frozen=True, slots=True)
class _Target:
    """Where one backend path goes: its parsed URL, ``Host`` header and transport."""

    url: httpx.URL
    host: bytes
    transport: httpx.AsyncBaseTransport
    #: The transport calls ``nexus.on_send`` itself (it may make a request wait for a slot).
    reports_send: bool


class UpstreamClient:
    """Sends attempts to backends, straight to the transport serving each backend's origin.

    Each backend has a connection pool of its own, as large as its ``max_concurrent_requests``
    (the scheduler's "at capacity" and the pool agree) or unlimited: the gateway-wide
    ``server.max_in_flight_requests`` is then the only limit. A request can still wait for a
    connection briefly (a stream's attempt is recorded before its connection is given back);
    ``on_send`` marks the end of that wait, which never counts against the backend
    (docs/proxying.md#timeouts).

    An ``httpx.Request`` in, an ``httpx.Response`` out, without ``AsyncClient``'s per-request
    cookie, auth and redirect machinery, none of which a gateway wants on its hot path. Each
    backend URL is parsed once (the targets are kept per base URL and path: a few per backend).
    ``mounts`` maps https origins to their verifying transports; every other backend goes to
    ``transport``.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self._transport = transport
        self._mounts = dict(mounts or {})
        self._targets: dict[tuple[str, str], _Target] = {}
        self._pools: dict[tuple[str, int], PoolSpec] = {}

    def _pool(self, backend: Backend) -> PoolSpec:
        """The backend's own connection pool: ``max_concurrent_requests`` slots, or no limit."""
        key = (backend.name, backend.config.max_concurrent_requests)
        found = self._pools.get(key)
        if found is None:
            found = self._pools[key] = PoolSpec(key[0], key[1] or None)
        return found

    def _target(self, base_url: str, path: str) -> _Target:
        found = self._targets.get((base_url, path))
        if found is None:
            url = httpx.URL(base_url + path)
            origin = f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")
            transport = self._mounts.get(origin, self._transport)
            reports = isinstance(transport, KeepAliveTransport)
            found = self._targets[base_url, path] = _Target(url, url.netloc, transport, reports)
        return found

    async def open(
        self,
        backend: Backend,
        path: str,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        connect_timeout: float,
        on_send: Callable[[], object],
    ) -> httpx.Response:
        """Send one POST with ``headers`` (a dialect's, complete) and return the response with
        its body not yet read.

        ``Host`` and ``Content-Length`` are appended to ``headers``; nothing else is added.
        Blocks until the status line and headers arrive. ``on_send`` is called once, when the
        request holds a connection slot of the backend's pool (at once for a transport without
        pools): what came before was waiting inside the gateway. The caller must close the
        response (``await response.aclose()``), also when cancelled. Raises
        :class:`UpstreamError`.
        """
        target = self._target(backend.base_url, path)
        # A request built from a stream gets no automatic headers: these are all of them.
        headers.append((b"host", target.host))
        headers.append((b"content-length", str(len(body)).encode()))
        try:
            request = httpx.Request(
                "POST",
                target.url,
                headers=headers,
                stream=httpx.ByteStream(body),
                extensions={
                    "timeout": {"connect": connect_timeout},
                    POOL_EXTENSION: self._pool(backend),
                    ON_SEND_EXTENSION: on_send,
                },
            )
            if not target.reports_send:
                on_send()
            response = await target.transport.handle_async_request(request)
            response.request = request
            return response
        except httpx.HTTPError as exc:
            raise translate_error(exc, backend) from exc


async def read_body(response: httpx.Response, backend: Backend, *, limit: int) -> bytes:
    """Read the whole body, refusing more than ``limit`` bytes
    (docs/configuration.md#sections); close the response once it is read to its end (on any
    failure closing it stays the caller's job).

    Raises:
        BadUpstreamResponse: the body is larger than ``limit``.
        UpstreamError: the connection failed while reading.
    """
    parts: list[bytes] = []
    size = 0
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("read_body needs a response from an async transport")
    try:
        # The transport's stream itself: httpx's aiter_raw() adds a chunker, a timer and an
        # exception-mapping context per chunk, none of which a whole-body read needs.
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise errors.BadUpstreamResponse(
                    f"Backend '{backend.name}' sent a response larger than {limit} bytes."
                )
            parts.append(chunk)
        await response.aclose()  # read to its end (on failure the caller closes it, shielded)
    except httpx.HTTPError as exc:
        raise translate_error(exc, backend) from exc
    return b"".join(parts)
