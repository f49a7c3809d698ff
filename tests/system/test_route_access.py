"""Every route the app serves, tried as an attacker would over a real socket: path variants
and {no key, wrong key} never get a 2xx with data, unless the route is open by
docs/api.md#routes; framing that two parsers could read differently is refused and the
connection closed (docs/api.md#request-targets)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio

from nexus_trio.api.gate import OPEN_PATHS, OPEN_PREFIX
from nexus_trio.api.proxy import ROUTES
from nexus_trio.config import parse_config
from nexus_trio.dashboard.mount import EVENTS_PATH
from nexus_trio.runtime.wiring import Wiring
from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory

pytestmark = pytest.mark.system

ENV = {"ADMIN_KEYS": "admin-secret", "TENANT_KEY": "tenant-secret"}
KEYS = '[[keys]]\nname = "tenant"\nkey_env = "TENANT_KEY"\nmodels = ["demo"]\n'


async def served_routes(config_text: str) -> list[tuple[str, str]]:
    """(method, path) of every route the app answers, read from the app itself."""
    config = parse_config(config_text)
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    async with httpx.AsyncClient(transport=transport) as http:
        wiring = Wiring.build(config, ENV, http, transport=transport)
        assert wiring.publisher is not None
        app = wiring.app()
    routes = [("POST", path) for path in ROUTES] + [("GET", EVENTS_PATH)]
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<[^>]+>", "dashboard.js", rule.rule)
        routes += [(method, path) for method in sorted(rule.methods or ()) if method != "HEAD"]
    return routes


def variants(path: str) -> list[str]:
    """Targets a lenient router would clean up into ``path``."""
    inner = path[1:]
    found = [
        "/" + path,
        "/%2F" + inner,
        "/%2f" + inner,
        "/./" + inner,
        "/%2e/" + inner,
        "/x/../" + inner,
        "/x/%2E%2E/" + inner,
        "http://gateway" + path,
        path + "/.",
    ]
    if "/" in inner:
        head, _, tail = inner.partition("/")
        found += [f"/{head}//{tail}", f"/{head}%2F{tail}", f"/{head}/./{tail}"]
    return found


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; everything the server sent until it closed."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    async with stream:
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(data)
        with trio.fail_after(10), contextlib.suppress(trio.BrokenResourceError):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return received


def request(method: str, target: str, key: str | None) -> bytes:
    body = b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}]}'
    lines = [f"{method} {target} HTTP/1.1", "Host: gateway", "Connection: close"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body if method == "POST" else b"")


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


async def test_no_route_variant_answers_without_a_key(
    start_backend: Callable[..., Awaitable[SimulatedBackend]], start_gateway: GatewayFactory
) -> None:
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    config = gateway_config(backend, server='api_keys_env = "ADMIN_KEYS"', extra="") + KEYS
    gateway = await start_gateway(config, env=ENV)
    routes = await served_routes(config)
    assert ("GET", "/v1/stats") in routes
    assert ("GET", "/metrics") in routes
    tried = 0
    for method, path in routes:
        is_open = path in OPEN_PATHS or path.startswith(OPEN_PREFIX)
        for key in (None, "wrong-secret"):
            answer = await exchange(gateway.port, request(method, path, key))
            status = status_of(answer)
            assert (200 <= status < 300) is is_open, (method, path, key, answer[:300])
            if not is_open:
                assert status == 401, (method, path, key, answer[:300])
            for target in variants(path):
                answer = await exchange(gateway.port, request(method, target, key))
                assert status_of(answer) == 400, (method, target, key, answer[:300])
                tried += 1
    assert tried > 100
    # the keys themselves: the admin key reads stats, a tenant key is refused the metrics
    admin = await exchange(gateway.port, request("GET", "/metrics", "admin-secret"))
    assert status_of(admin) == 200
    tenant = await exchange(gateway.port, request("GET", "/metrics", "tenant-secret"))
    assert status_of(tenant) == 403


async def test_content_length_with_transfer_encoding_is_refused_and_nothing_is_smuggled(
    start_backend: Callable[..., Awaitable[SimulatedBackend]], start_gateway: GatewayFactory
) -> None:
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    gateway = await start_gateway(gateway_config(backend))
    smuggled = b"GET /v1/stats HTTP/1.1\r\nHost: gateway\r\n\r\n"
    chunked = b"0\r\n\r\n" + smuggled
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(chunked)}\r\n".encode()
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )
    # all at once, as an attacker sends it: the body is read as the server frames it, then
    # the refusal is sent and the connection closed
    for _ in range(10):
        answer = await exchange(gateway.port, head + chunked)
        assert status_of(answer) == 400
        assert b"ambiguous_framing" in answer
        assert answer.count(b"HTTP/1.1 ") == 1  # nothing after the body was served
    assert backend.received == []
    assert "ERROR" not in gateway.log_text()
