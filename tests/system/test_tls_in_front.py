"""The recipe for TLS in front (docs/operations.md#tls-in-front): Debian's nginx with the
repository's ``etc/nginx-nexus-trio.conf`` and a certificate the test makes with openssl; a
stream arrives through it event by event, and the access log names the client nginx saw."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from tests.system.gateway_process import GatewayFactory, access_records
from tests.system.polling import poll
from tests.system.ports import free_port
from tests.system.raw_upstream import SSE_HEAD, RawUpstream, chunk
from tests.system.wheel import REPO

pytestmark = pytest.mark.system

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
RECIPE = REPO / "etc" / "nginx-nexus-trio.conf"
EVENTS = 8


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def recipe_for(gateway_port: int, tls_port: int, cert: Path, key: Path) -> str:
    """The recipe as shipped, with this test's ports and certificate in place of the examples."""
    text = RECIPE.read_text()
    for example, actual in (
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{gateway_port};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{tls_port} ssl;"),
        ("/etc/ssl/nexus-trio/fullchain.pem", str(cert)),
        ("/etc/ssl/nexus-trio/privkey.pem", str(key)),
    ):
        assert text.count(example) == 1, example
        text = text.replace(example, actual)
    return text


@asynccontextmanager
async def running_nginx(site: str, directory: Path) -> AsyncIterator[None]:
    """nginx in the foreground, one process, everything it writes under ``directory``."""
    assert NGINX is not None
    (directory / "site.conf").write_text(site)
    temp = " ".join(
        f"{kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (directory / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'};\nevents {{}}\n"
        f"http {{\n access_log off;\n {temp}\n include {directory / 'site.conf'};\n}}\n"
    )
    command = [NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf")]
    command += ["-e", str(directory / "error.log")]
    process = await trio.lowlevel.open_process(command, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.terminate()
        with trio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


class LockstepUpstream(RawUpstream):
    """An OpenAI-style backend whose stream sends event ``i + 1`` only once the client has
    received event ``i``: any buffering on the way stalls the stream."""

    def __init__(self) -> None:
        super().__init__()
        self.received = [trio.Event() for _ in range(EVENTS)]

    async def answer(self, stream: trio.SocketStream) -> None:
        await stream.send_all(SSE_HEAD + b"connection: close\r\n\r\n")
        for index in range(EVENTS):
            if index:
                with trio.fail_after(5):
                    await self.received[index - 1].wait()
            await stream.send_all(chunk(_event(index)))
        await stream.send_all(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await stream.aclose()


def _event(index: int) -> bytes:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "demo",
        "choices": [{"index": 0, "delta": {"content": f"e{index} "}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


@pytest.mark.skipif(
    NGINX is None and not os.environ.get("CI"), reason="nginx absent (Debian: nginx; .ci/run)"
)
async def test_a_stream_through_nginx_over_tls_arrives_event_by_event(
    start_gateway: GatewayFactory, nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = LockstepUpstream()
    await nursery.start(upstream.run)
    gateway = await start_gateway(
        '[server]\nport = 0\ntrusted_proxies = ["127.0.0.1"]\n[logging]\nformat = "json"\n'
        '[health_check]\nenabled = false\n[[backends]]\nname = "up"\n'
        f'url = "http://127.0.0.1:{upstream.port}"\ntype = "generic"\nmodels = ["demo"]\n'
    )
    cert, key = certificate(tmp_path)
    tls_port = free_port()
    async with running_nginx(recipe_for(gateway.port, tls_port, cert, key), tmp_path):
        context = ssl.create_default_context(cafile=str(cert))
        # the client on 127.0.0.2: what nginx appends to X-Forwarded-For, not the forged hop
        transport = httpx.AsyncHTTPTransport(verify=context, local_address="127.0.0.2")
        async with httpx.AsyncClient(transport=transport, timeout=10) as client:
            with trio.fail_after(10):
                await poll(lambda: _listening(tls_port))
            received = await _stream(client, f"https://127.0.0.1:{tls_port}", upstream)
    assert received == [f"e{index} " for index in range(EVENTS)]
    with trio.fail_after(5):
        await poll(lambda: bool(access_records(gateway)))
    assert access_records(gateway)[-1]["client"] == "127.0.0.2"


async def _stream(client: httpx.AsyncClient, url: str, upstream: LockstepUpstream) -> list[str]:
    """Stream a chat through ``url``, marking each event received as it arrives."""
    body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    received: list[str] = []
    headers = {"x-forwarded-for": "6.6.6.6"}  # forged by the client
    async with client.stream(
        "POST", f"{url}/v1/chat/completions", json=body, headers=headers
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if delta:
                    upstream.received[len(received)].set()
                    received.append(delta)
    return received


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_docs_show_the_recipe_as_shipped() -> None:
    page = (REPO / "docs" / "operations.md").read_text()
    assert f"```nginx\n{RECIPE.read_text()}```\n" in page
