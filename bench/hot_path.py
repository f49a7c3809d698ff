"""The gateway's own per-request CPU, without sockets, server or upstream: µs per request.

Run as ``python bench/hot_path.py [--requests 20000] [--profile]`` from the work tree, in the
venv. It builds the real app (``create_app``) on the benchmark's configuration, with an upstream
transport that answers every request at once with the benchmark's 700-byte completion, starts
the disconnect watcher, and drives ``POST /v1/chat/completions`` straight through the ASGI
callable, one request after another, in one trio run. What it measures is everything the gateway
itself does per request — ASGI handling, body read, view decoding, routing, the attempt,
judging the answer, the reply, accounting — and nothing hypercorn, h11 or the network do, so
it is far steadier than a load test and shows the effect of a change to the hot path in a few
seconds. ``--profile`` adds cProfile's top entries by cumulative time (cProfile slows Python
code about three times; read the shares, not the times).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from typing import Any

import httpx
import payloads
import trio

from nexus_trio.api.app import create_app
from nexus_trio.config import parse_config
from nexus_trio.registry import HealthState
from nexus_trio.services import Services
from nexus_trio.upstream.client import upstream_http_client

CONFIG = """
[logging]
level = "warning"
[health_check]
enabled = false
[[backends]]
name = "bench-plain"
url = "http://127.0.0.1:9/plain"
type = "generic"
models = ["bench"]
[[backends]]
name = "bench-stream"
url = "http://127.0.0.1:9/stream"
type = "generic"
models = ["bench-stream"]
"""

_ANSWER = payloads.chat_completion()
_REQUEST = payloads.chat_request(payloads.PLAIN_MODEL, streaming=False)
_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/v1/chat/completions",
    "raw_path": b"/v1/chat/completions",
    "query_string": b"",
    "root_path": "",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"content-length", str(len(_REQUEST)).encode()),
        (b"content-type", b"application/json"),
    ],
    "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", 8000),
    "extensions": {},
}


class InstantUpstream(httpx.AsyncBaseTransport):
    """Answers every request at once with the benchmark's completion."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        headers = [(b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(_ANSWER)).encode()))
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(_ANSWER))


async def measure(requests: int, profile: bool) -> None:
    """Print µs per request over ``requests`` sequential requests (after a warm-up)."""
    transport = InstantUpstream()
    services = Services.create(
        parse_config(CONFIG), {}, upstream_http_client(transport), transport=transport
    )
    for backend in services.registry:
        backend.health = HealthState.HEALTHY
    app = create_app(services)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def one() -> None:
        messages = [{"type": "http.request", "body": _REQUEST, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        sent.clear()
        await app.asgi_app(dict(_SCOPE), receive, send)  # type: ignore[arg-type]
        if sent[0]["status"] != 200:
            raise SystemExit(f"the gateway answered {sent}")

    async with trio.open_nursery() as nursery:
        await nursery.start(services.disconnects.run)
        for _ in range(500):
            await one()
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for _ in range(requests):
            await one()
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    print(f"{elapsed / requests * 1e6:.1f} µs per request ({requests:,} requests)")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top 40")
    args = parser.parse_args()
    trio.run(measure, args.requests, args.profile)


if __name__ == "__main__":
    main()
