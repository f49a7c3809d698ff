"""The gateway's own per-request CPU, without sockets, server or upstream: µs per request.

Run as ``python bench/hot_path.py [--requests 20000] [--profile]`` from the work tree, in the
venv. It builds the real app (``Wiring.app``) on the benchmark's configuration, with an upstream
transport that answers every request at once with the benchmark's 700-byte completion, starts
the disconnect watcher, and drives ``POST /v1/chat/completions`` straight through the ASGI
callable, one request after another, in one trio run. What it measures is everything the gateway
itself does per request — ASGI handling, body read, view decoding, routing, the attempt,
judging the answer, the reply, accounting — and nothing hypercorn, h11 or the network do, so
it is far steadier than a load test and shows the effect of a change to the hot path in a few
seconds. ``--profile`` adds cProfile's top entries by cumulative time (cProfile slows Python
code about three times; read the shares, not the times).

``--request-log-ab`` measures what the dashboard's request ring buffer costs: two apps, one with
``[dashboard] enabled = true`` (the default: each finished request is appended to the ring)
and one with it off (no ring), driven in alternating blocks in the same process, so both see
the same machine; it prints the median µs per request of each and their difference, the
cost of one ``RequestLog.append`` measured alone, and the cost of one dashboard snapshot
built, encoded and published with 200 new requests in it (a busy second's worth: the ring
holds no more).

``--spend-ab`` measures, the same way, what spend tracking adds to every request: one app
with the spend gateway's additions of ``bench/run.py --spend`` (two named keys with request and
token limits that are never reached, ``[[pricing]]`` on both backends, a global and a per-key
budget, and the SQLite ledger service writing once a second into a temporary directory), the
requests alternating between the two keys; the other the plain configuration, sent the same
headers.

``--tracing-ab`` measures what tracing every request costs (``[tracing] sample_ratio = 1``),
the export included: one app traces every request, its spans encoded by the real export
service and handed to a sender that discards them (no HTTP); the other has tracing off. Each
block's cost is the process's CPU time (every thread's) over its requests and, for the traced
app, until all their spans were encoded.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import payloads
import spend_gateway
import trio

from nexus_trio.api.accounting import request_record
from nexus_trio.asgi.context import RequestContext
from nexus_trio.config import parse_config
from nexus_trio.dashboard.request_log import RequestLog
from nexus_trio.registry import HealthState
from nexus_trio.runtime.wiring import Wiring
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


class DiscardedExports:
    """The span export's sender: takes every encoded export, counts its bytes, sends nothing."""

    def __init__(self) -> None:
        self.bytes = 0

    def send(self, body: bytes) -> bool:
        self.bytes += len(body)
        return True

    def close(self) -> None:
        pass


def build(
    config: str,
    nursery: trio.Nursery,
    keys: tuple[str, ...] = (),
    span_sender: DiscardedExports | None = None,
    wirings: list[Wiring] | None = None,
) -> Callable[[], Awaitable[None]]:
    """The app on ``config``; returns a function that drives one request through it. With
    ``keys``, the requests carry them in turn as bearer keys. The ledger service runs when
    the configuration keeps spend, the span export with ``[tracing]`` (to ``span_sender``).
    The wiring is appended to ``wirings``, if given."""
    transport = InstantUpstream()
    wiring = Wiring.build(
        parse_config(config),
        {},
        upstream_http_client(transport),
        transport=transport,
        span_sender=span_sender,
    )
    if wirings is not None:
        wirings.append(wiring)
    if wiring.span_export is not None:
        nursery.start_soon(wiring.span_export.run)
    for backend in wiring.registry:
        backend.health = HealthState.HEALTHY
    app = wiring.app()
    nursery.start_soon(wiring.disconnects.run)
    ledger = wiring.ledger_service()
    if ledger is not None:
        nursery.start_soon(ledger.run)
    scopes = [
        {**_SCOPE, "headers": [*_SCOPE["headers"], (b"authorization", f"Bearer {key}".encode())]}
        for key in keys
    ] or [_SCOPE]
    sent: list[dict[str, Any]] = []
    count = 0

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def one() -> None:
        messages = [{"type": "http.request", "body": _REQUEST, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        nonlocal count
        count += 1
        sent.clear()
        await app.asgi_app(dict(scopes[count % len(scopes)]), receive, send)  # type: ignore[arg-type]
        if sent[0]["status"] != 200:
            raise SystemExit(f"the gateway answered {sent}")

    return one


async def measure(requests: int, profile: bool) -> None:
    """Print µs per request over ``requests`` sequential requests (after a warm-up)."""
    async with trio.open_nursery() as nursery:
        one = build(CONFIG, nursery)
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


def spend_config(state: str) -> str:
    """:data:`CONFIG` with the spend gateway's keys, limits, prices, budgets and ledger."""
    return CONFIG + spend_gateway.additions(state)


async def alternate(
    variants: dict[str, Callable[[], Awaitable[None]]], requests: int, blocks: int
) -> tuple[dict[str, float], int]:
    """Drive the variants in alternating blocks (ABBA...); median µs per request of each."""
    for one in variants.values():
        for _ in range(500):
            await one()
    per_block = max(requests // blocks, 1)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for block in range(blocks):
        # Alternate which goes first, so neither gains from running second (ABBA...).
        order = list(variants.items())
        for name, one in order if block % 2 == 0 else reversed(order):
            started = time.perf_counter()
            for _ in range(per_block):
                await one()
            samples[name].append((time.perf_counter() - started) / per_block * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}, per_block


async def spend_ab(requests: int, blocks: int = 10) -> None:
    """Alternate blocks with and without keys, limits, pricing, budgets and the ledger."""
    keys = spend_gateway.KEYS
    with tempfile.TemporaryDirectory(prefix="nexus-hot-path-") as state:
        async with trio.open_nursery() as nursery:
            variants = {
                "spend on": build(spend_config(state), nursery, keys),
                "spend off": build(CONFIG, nursery, keys),
            }
            medians, per_block = await alternate(variants, requests, blocks)
            nursery.cancel_scope.cancel()
    on, off = medians["spend on"], medians["spend off"]
    print(f"spend on:   {on:.2f} µs per request (median of {blocks} blocks of {per_block:,})")
    print(f"spend off:  {off:.2f} µs per request")
    print(f"difference: {on - off:+.2f} µs per request ({(on / off - 1) * 100:+.1f} %)")


async def tracing_ab(requests: int, blocks: int = 10) -> None:
    """Alternate blocks with tracing every request (the export included) and with it off."""
    sender = DiscardedExports()
    wirings: list[Wiring] = []
    traced = CONFIG + '[tracing]\notlp_endpoint = "http://127.0.0.1:9"\nsample_ratio = 1.0\n'
    per_block = max(requests // blocks, 1)
    samples: dict[str, list[float]] = {"tracing on": [], "tracing off": []}
    async with trio.open_nursery() as nursery:
        variants = {
            "tracing on": build(traced, nursery, span_sender=sender, wirings=wirings),
            "tracing off": build(CONFIG, nursery),
        }
        for one in variants.values():
            for _ in range(500):
                await one()
        for block in range(blocks):
            order = list(variants.items())
            for name, one in order if block % 2 == 0 else reversed(order):
                await wait_exported(wirings[0], (500 + block * per_block) * 2)
                started = time.process_time()
                for _ in range(per_block):
                    await one()
                if name == "tracing on":
                    await wait_exported(wirings[0], (500 + (block + 1) * per_block) * 2)
                used = time.process_time() - started
                samples[name].append(used / per_block * 1e6)
        nursery.cancel_scope.cancel()
    on, off = (statistics.median(samples[name]) for name in ("tracing on", "tracing off"))
    print(f"tracing on:  {on:.2f} µs CPU per request (median of {blocks} blocks of {per_block:,})")
    print(f"tracing off: {off:.2f} µs CPU per request")
    print(f"difference:  {on - off:+.2f} µs per request ({(on / off - 1) * 100:+.1f} %)")
    spans = exported(wirings[0])
    print(f"spans encoded: {spans:,.0f}, {sender.bytes / spans:.0f} bytes each")


def exported(wiring: Wiring) -> float:
    return wiring.metrics.registry.get_sample_value("nexus_trace_spans_exported_total") or 0.0


async def wait_exported(wiring: Wiring, spans: int) -> None:
    """Until ``wiring`` counted ``spans`` spans exported (the export runs once a second)."""
    with trio.fail_after(30):
        while exported(wiring) < spans:  # noqa: ASYNC110 - no event to wait on
            await trio.sleep(0.005)


async def request_log_ab(requests: int, blocks: int = 10) -> None:
    """Alternate blocks with and without the request ring buffer; print both and the cost."""
    async with trio.open_nursery() as nursery:
        variants = {
            "ring buffer on": build(CONFIG, nursery),
            "ring buffer off": build(CONFIG + "[dashboard]\nenabled = false\n", nursery),
        }
        medians, per_block = await alternate(variants, requests, blocks)
        nursery.cancel_scope.cancel()
    on, off = medians["ring buffer on"], medians["ring buffer off"]
    print(f"ring buffer on:  {on:.2f} µs per request (median of {blocks} blocks of {per_block:,})")
    print(f"ring buffer off: {off:.2f} µs per request")
    print(f"difference:      {on - off:+.2f} µs per request ({(on / off - 1) * 100:+.1f} %)")
    ring = RequestLog(200)
    ctx = RequestContext(
        request_id="x" * 36, method="POST", path="/v1/chat/completions", started=0.0
    )
    ctx.completed, ctx.status, ctx.backend = True, 200, "bench-plain"
    record = request_record(ctx, unauthenticated=False)
    appends = 200_000
    seconds = min(timeit.repeat(lambda: ring.append(record), number=appends, repeat=5))
    print(f"RequestLog.append alone: {seconds / appends * 1e6:.2f} µs")
    await snapshot_cost()


async def snapshot_cost() -> None:
    """Time one snapshot published with 200 new request-log entries, as in a busy second."""
    transport = InstantUpstream()
    wiring = Wiring.build(
        parse_config(CONFIG), {}, upstream_http_client(transport), transport=transport
    )
    publisher, request_log = wiring.publisher, wiring.request_log
    assert publisher is not None
    assert request_log is not None
    ctx = RequestContext(
        request_id="x" * 36, method="POST", path="/v1/chat/completions", started=0.0
    )
    ctx.completed, ctx.status, ctx.backend = True, 200, "bench-plain"
    record = request_record(ctx, unauthenticated=False)
    timings = []
    for _ in range(200):
        for _ in range(200):
            request_log.append(record)
        started = time.perf_counter()
        published = publisher.publish()
        timings.append(time.perf_counter() - started)
    print(
        f"one dashboard snapshot with 200 new requests: {statistics.median(timings) * 1e3:.2f} ms "
        f"to build, encode and publish ({len(published.event):,} bytes), once a second"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top 40")
    parser.add_argument(
        "--request-log-ab",
        action="store_true",
        help="compare the dashboard's request ring buffer on and off, in the same process",
    )
    parser.add_argument(
        "--spend-ab",
        action="store_true",
        help="compare keys, limits, pricing, budgets and the ledger on and off, same process",
    )
    parser.add_argument(
        "--tracing-ab",
        action="store_true",
        help="compare tracing every request (export included) on and off, same process",
    )
    args = parser.parse_args()
    if args.tracing_ab:
        trio.run(tracing_ab, args.requests)
    elif args.spend_ab:
        trio.run(spend_ab, args.requests)
    elif args.request_log_ab:
        trio.run(request_log_ab, args.requests)
    else:
        trio.run(measure, args.requests, args.profile)


if __name__ == "__main__":
    main()
