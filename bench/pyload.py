"""The fallback load generator of ``bench/run.py``, used when wrk is not installed.

Run as ``python bench/pyload.py URL -c 16 -d 10 --body FILE [--body-alt FILE] [--key KEY ...]
[--max-requests N]``. Like ``wrk -t1 -s bench/wrk.lua``: one process, ``-c`` keep-alive
connections on asyncio each sending one POST at a time until ``-d`` seconds have passed (or
``--max-requests`` responses arrived), alternating between two bodies when ``--body-alt`` is
given, and between bearer keys (``Authorization``) when ``--key`` is given more than once. It
prints the same ``BENCH_RESULT {json}`` line as ``bench/wrk.lua``. It understands
``Content-Length`` and chunked responses, which is all the three servers send. It is much
slower than wrk, so it caps the figures of the fastest target; the report says it was used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Tally:
    """What every connection of one run adds to: latencies and wrk's error counters."""

    max_requests: int | None
    latencies_us: list[float] = field(default_factory=list)
    claimed: int = 0
    connect: int = 0
    read: int = 0
    status: int = 0
    timeout: int = 0

    def claim(self) -> bool:
        """Reserve one request of the ``--max-requests`` budget; False once it is spent."""
        if self.max_requests is not None and self.claimed >= self.max_requests:
            return False
        self.claimed += 1
        return True


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one whole response; return its status and whether the connection stays open."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF; the last one's CRLF
            if size == 0:
                break
    return status, headers.get("connection") != "close"


async def connection(
    host: str, port: int, requests: list[bytes], tally: Tally, deadline: float, limit: float
) -> None:
    """Send requests on one keep-alive connection (reopened after errors) until the deadline."""
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    sent = 0
    while time.monotonic() < deadline and tally.claim():
        if streams is None:
            try:
                streams = await asyncio.wait_for(asyncio.open_connection(host, port), limit)
            except (OSError, TimeoutError):
                tally.connect += 1
                await asyncio.sleep(0.01)
                continue
        reader, writer = streams
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                writer.write(requests[sent % len(requests)])
                sent += 1
                status, keep_alive = await read_response(reader)
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError) as exc:
            if isinstance(exc, TimeoutError):
                tally.timeout += 1
            else:
                tally.read += 1
            writer.close()
            streams = None
            continue
        tally.latencies_us.append((time.perf_counter() - started) * 1e6)
        if status >= 400:
            tally.status += 1
        if not keep_alive:
            writer.close()
            streams = None
    if streams is not None:
        streams[1].close()


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


async def run(args: argparse.Namespace, bodies: list[bytes]) -> dict[str, float]:
    """One load run sending ``bodies`` (each with each key) in turn; the result in the names of
    ``bench/wrk.lua``."""
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    auth = [f"Authorization: Bearer {key}\r\n" for key in args.key] or [""]
    requests = [
        (
            f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n{header}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
        for header in auth
    ]
    tally = Tally(args.max_requests)
    started = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for _ in range(args.connections):
            group.create_task(
                connection(host, port, requests, tally, started + args.duration, args.timeout)
            )
    ordered = sorted(tally.latencies_us)
    return {
        "requests": len(ordered),
        "duration_us": (time.monotonic() - started) * 1e6,
        "p50_us": _percentile(ordered, 0.50),
        "p99_us": _percentile(ordered, 0.99),
        "connect": tally.connect,
        "read": tally.read,
        "write": 0,
        "status": tally.status,
        "timeout": tally.timeout,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--body", required=True, help="file holding the request body")
    parser.add_argument("--body-alt", help="second body file; requests alternate")
    parser.add_argument(
        "--key", action="append", default=[], help="bearer key; repeat to alternate keys"
    )
    parser.add_argument("--max-requests", type=int, help="stop after this many responses")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    args = parser.parse_args()
    bodies = [Path(name).read_bytes() for name in (args.body, args.body_alt) if name]
    print("BENCH_RESULT " + json.dumps(asyncio.run(run(args, bodies))))


if __name__ == "__main__":
    main()
