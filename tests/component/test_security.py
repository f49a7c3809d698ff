"""Security review of the request path (docs/proxying.md#headers,
docs/configuration.md#configuration): nothing secret or internal leaks."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from nexus_trio.config import Config
from tests.component.client import CHAT
from tests.component.fake_upstream import ChunkStream, completion, raw_response
from tests.component.in_process import Gateway

BACKEND_KEY = "sk-backend-VERY-SECRET-1234"
INBOUND_KEY = "inbound-VERY-SECRET-5678"
INTERNAL_HOST = "internal-gpu-7.corp.example"
CONFIG = f"""
[server]
api_keys_env = "GATEWAY_KEYS"
[health_check]
enabled = false
[[backends]]
name = "cloud"
url = "https://{INTERNAL_HOST}:8443/openai"
type = "openai"
api_key_env = "CLOUD_KEY"
models = ["m"]
[[backends]]
name = "local"
url = "http://{INTERNAL_HOST}:11434"
type = "ollama"
models = ["m"]
"""


@pytest.fixture
async def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway(CONFIG, env={"CLOUD_KEY": BACKEND_KEY, "GATEWAY_KEYS": INBOUND_KEY})


def test_default_bind_is_loopback() -> None:
    assert Config().server.host == "127.0.0.1"


async def test_no_key_url_or_exception_text_leaks_anywhere(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="nexus_trio")
    calls = 0

    async def flaky(request: httpx.Request, body: bytes) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls % 3 == 1:
            raise httpx.ConnectError(f"[Errno 111] connect to {INTERNAL_HOST} refused")
        if calls % 3 == 2:
            return raw_response(502, b"<html>bad gateway at " + INTERNAL_HOST.encode() + b"</html>")
        return completion()

    for host in (INTERNAL_HOST,):
        gateway.upstream.handlers[host] = flaky
    auth = {"authorization": f"Bearer {INBOUND_KEY}"}
    bodies = []
    for _ in range(6):
        response = await gateway.post("/v1/chat/completions", CHAT, **auth)
        bodies.append(await response.get_data())
        bodies.append(repr(dict(response.headers)).encode())
    stream = ChunkStream([httpx.ReadError(f"reset by {INTERNAL_HOST}")])

    async def broken_stream(request: httpx.Request, body: bytes) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    gateway.upstream.handlers[INTERNAL_HOST] = broken_stream
    response = await gateway.post("/v1/chat/completions", {**CHAT, "stream": True}, **auth)
    bodies.append(await response.get_data())
    gateway.wiring.quality_loop().tick()
    client = gateway.app.test_client()
    for path in ("/v1/stats", "/v1/models", "/metrics", "/health"):
        answer = await client.get(path, headers=auth)
        bodies.append(await answer.get_data())
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    everything = b"\n".join(bodies).decode() + logged
    assert BACKEND_KEY not in everything
    assert INBOUND_KEY not in everything
    client_visible = b"\n".join(bodies).decode()
    assert INTERNAL_HOST not in client_visible.replace("bad gateway at " + INTERNAL_HOST, "")
    assert "Errno" not in client_visible
    assert "reset by" not in client_visible
    # the backend key was sent where it belongs, and only there
    sent = {(r.url.port, r.headers.get("authorization")) for r, _ in gateway.upstream.requests}
    assert sent == {(8443, f"Bearer {BACKEND_KEY}"), (11434, None)}
