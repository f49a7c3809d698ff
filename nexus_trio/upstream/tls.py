"""TLS for ``https://`` backends (docs/routing.md#backend-types): verified, with the system CAs or a
backend's own.

httpx verifies against certifi's bundle by default; a gateway host's operators manage the
system store instead, and a backend behind a private CA names its file in ``tls_ca_file``.
Each https backend origin therefore gets its own verifying transport, mounted on the shared
client. Built at start-up: a changed ``tls_ca_file`` applies after a restart.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import httpx

from nexus_trio.config import BackendConfig
from nexus_trio.errors import ConfigError

#: httpx pools 100 connections per transport by default: a limit the router would not see.
#: The scheduler's ``max_concurrent_requests`` and ``server.max_in_flight_requests`` bound it.
UNLIMITED = httpx.Limits(max_connections=None, max_keepalive_connections=64)


def https_mounts(backends: Sequence[BackendConfig]) -> dict[str, httpx.AsyncBaseTransport]:
    """One verifying transport per https backend origin, keyed for ``AsyncClient(mounts=)``.

    Raises:
        ConfigError: a ``tls_ca_file`` cannot be read or holds no certificate.
    """
    mounts: dict[str, httpx.AsyncBaseTransport] = {}
    for index, backend in enumerate(backends):
        url = httpx.URL(backend.url)
        if url.scheme != "https":
            continue
        try:
            context = ssl.create_default_context(cafile=backend.tls_ca_file)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(
                f"$.backends[{index}].tls_ca_file: cannot load {backend.tls_ca_file}: {reason}"
            ) from exc
        origin = f"https://{url.host}" + (f":{url.port}" if url.port else "")
        mounts[origin] = httpx.AsyncHTTPTransport(verify=context, limits=UNLIMITED)
    return mounts
