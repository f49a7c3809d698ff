"""The clients of ``bench/streams.py``: one request per fresh connection, timed as it arrives.

Every client opens its own TCP connection, sends one chat request (trio + h11), reads the answer
to its end and closes the connection: no keep-alive reuse. A streamed answer is parsed with the
gateway's own SSE parser; each content event carries the ``time.monotonic()`` at which the
upstream (or the no-op app) wrote it, so the client measures the delay added to each event.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

import h11
import trio

from nexus_trio.upstream.sse import SSEParser

HOST = "127.0.0.1"
STAMP = re.compile(r'"t":([0-9.]+)')


def chat_body(*, streaming: bool, quick: bool = False) -> bytes:
    """A chat request for model ``bench``; ``quick`` asks the servers to answer at once."""
    request: dict[str, object] = {
        "model": "bench",
        "stream": streaming,
        "messages": [{"role": "user", "content": "go"}],
    }
    if quick:
        request["bench_quick"] = True
    return json.dumps(request).encode()


@dataclass
class Outcome:
    #: Responses whose head arrived (the no-op app sends it at once, the gateway at commit).
    heads: int = 0
    whole: int = 0
    truncated: int = 0
    failed: int = 0
    events: int = 0
    #: Added delay of each content event after the first of its stream, in seconds.
    delays: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def http_get(port: int, path: str) -> bytes:
    """One GET on a fresh connection; the whole body."""
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(method="GET", target=path, headers=[("host", "bench")])
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return body


def request_bytes(conn: h11.Connection, body: bytes) -> bytes:
    """A ``POST /v1/chat/completions`` with ``body``, framed by ``conn``."""
    headers = [
        ("host", "bench"),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    ]
    request = h11.Request(method="POST", target="/v1/chat/completions", headers=headers)
    return conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())


async def one_stream(port: int, outcome: Outcome, body: bytes) -> None:
    """One streaming chat request on a connection of its own; its events timed as they arrive."""
    try:
        stream = await trio.open_tcp_stream(HOST, port)
    except OSError as exc:
        outcome.failed += 1
        outcome.error(type(exc).__name__)
        return
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        parser = SSEParser()
        status = 0
        done = truncated = False
        previous: tuple[float, float] | None = None
        try:
            await stream.send_all(request_bytes(conn, body))
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                    outcome.heads += 1
                elif isinstance(event, h11.Data):
                    now = time.monotonic()
                    for sse in parser.feed(bytes(event.data)):
                        outcome.events += 1
                        data = sse.data or ""
                        if sse.is_done:
                            done = True
                        elif "stream_truncated" in data:
                            truncated = True
                        elif '"content"' in data and (stamp := STAMP.search(data)):
                            sent = float(stamp.group(1))
                            if previous is not None:
                                outcome.delays.append((now - previous[0]) - (sent - previous[1]))
                            previous = (now, sent)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
        except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
            outcome.error(type(exc).__name__)
    if status == 200 and done and not truncated:
        outcome.whole += 1
    elif status == 200 and truncated:
        outcome.truncated += 1
    else:
        outcome.failed += 1
        outcome.error(f"status {status}" if status != 200 else "ended without [DONE]")


async def one_request(port: int, outcome: Outcome, body: bytes) -> None:
    """One non-streaming chat request on a connection of its own; whole if 200 with a choice."""
    status = 0
    answer = b""
    try:
        stream = await trio.open_tcp_stream(HOST, port)
        async with stream:
            conn = h11.Connection(h11.CLIENT)
            await stream.send_all(request_bytes(conn, body))
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    outcome.heads += 1
                elif isinstance(event, h11.Data):
                    answer += event.data
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
    except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
        outcome.error(type(exc).__name__)
    try:
        whole = status == 200 and bool(json.loads(answer).get("choices"))
    except ValueError:
        whole = False
    if whole:
        outcome.whole += 1
    else:
        outcome.failed += 1
        outcome.error(f"status {status}" if status != 200 else "no choices in the answer")
