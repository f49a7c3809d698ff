"""An https backend is verified: a private CA is refused unless named in tls_ca_file."""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

import httpx
import pytest
import trio
import trustme

from nexus_trio.config import BackendConfig
from nexus_trio.upstream.tls import https_mounts

pytestmark = pytest.mark.system

MODELS = b'{"object": "list", "data": [{"id": "m", "object": "model"}]}'


async def _serve_once(stream: trio.SSLStream[trio.SocketStream]) -> None:
    try:
        request = b""
        while b"\r\n\r\n" not in request:
            request += await stream.receive_some(4096)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        head += b"content-length: %d\r\nconnection: close\r\n\r\n" % len(MODELS)
        await stream.send_all(head + MODELS)
        await stream.aclose()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client refused our certificate


async def test_private_ca_needs_tls_ca_file(nursery: trio.Nursery, tmp_path: Path) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    listeners = await nursery.start(
        functools.partial(trio.serve_ssl_over_tcp, _serve_once, 0, server_context, host="127.0.0.1")
    )
    port = listeners[0].transport_listener.socket.getsockname()[1]
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    url = f"https://127.0.0.1:{port}"

    trusting = BackendConfig(name="b", url=url, type="generic", tls_ca_file=str(ca_file))
    async with httpx.AsyncClient(mounts=https_mounts([trusting])) as client:
        response = await client.get(f"{url}/v1/models")
    assert response.status_code == 200

    default = BackendConfig(name="b", url=url, type="generic")
    async with httpx.AsyncClient(mounts=https_mounts([default])) as client:
        with pytest.raises(httpx.ConnectError) as refused:
            await client.get(f"{url}/v1/models")
    causes = []
    error: BaseException | None = refused.value
    while error is not None:
        causes.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes), causes
