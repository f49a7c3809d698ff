"""A timed SSE upstream for ``bench/streams.py``: holds as many streams as it is sent.

Run as ``python bench/stream_upstream.py --port N --ttft-ms T --events E --gap-ms G``. Every
``POST`` is answered with a chat-completion event stream: the first content event after ``T``
ms, then one every ``G`` ms, ``E`` content events in all, a ``finish_reason`` event and ``data:
[DONE]``. With ``--spread`` each stream's first event comes a random part of a gap later
(uniform in ``[0, G)``), so the streams' events are spread over time as independent streams'
tokens are; without it every stream writes in the same instant. Each event carries ``"t"``, the
``time.monotonic()`` at which it was written (the clock is system-wide, so the client can
compare it with its own). A ``POST`` whose body does not say ``"stream": true`` is answered
after ``T`` ms with the 700-byte chat completion of ``bench/payloads.py``. A body with
``"bench_quick": true`` is answered at once (one content event, or the completion): the
harness's warm-up. ``GET /stats`` answers ``{"open": N, "peak": N, "completed": N,
"connections": N, "requests": N}``: requests held now, the most held at once, answers written
to their end, connections that carried a ``POST`` and ``POST``s served (a client that reuses
connections makes fewer connections than requests). HTTP is h11 over trio; event bodies are
prebuilt but for the timestamp.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass

import h11
import trio
from payloads import chat_completion

CHUNK = (
    b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","model":"bench",'
    b'"choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}],"t":%.6f}'
)
FINISH = (
    b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","model":"bench",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"t":%.6f}'
)
COMPLETION = chat_completion()
HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
COMPLETION_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", b"%d" % len(COMPLETION)),
]


@dataclass(frozen=True)
class Timing:
    """When a request is answered: after ``ttft`` s; a stream's ``events`` ``gap`` s apart."""

    ttft: float
    events: int
    gap: float
    spread: bool

    def first_due(self) -> float:
        """When a stream opened now writes its first event (trio clock)."""
        return (
            trio.current_time()
            + self.ttft
            + (random.uniform(0.0, self.gap) if self.spread else 0.0)
        )


#: The warm-up's timing (``"bench_quick": true``): answered at once, one content event.
QUICK = Timing(0.0, 1, 0.0, False)


def asks(body: bytes) -> tuple[bool, bool]:
    """``(streaming, quick)``: whether a request body says ``"stream": true`` and
    ``"bench_quick": true``."""
    request = json.loads(body)
    return bool(request.get("stream")), bool(request.get("bench_quick"))


class Upstream:
    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self.open = 0
        self.peak = 0
        self.completed = 0
        self.connections = 0
        self.requests = 0

    async def serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        posted = False
        try:
            while True:
                received = await self._request(stream, conn)
                if received is None:
                    return
                request, body = received
                if request.method == b"GET":
                    await self._stats(stream, conn)
                else:
                    self.connections += not posted
                    self.requests += 1
                    posted = True
                    await self._answer(stream, conn, body)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return

    async def _request(
        self, stream: trio.SocketStream, conn: h11.Connection
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return None
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                return request, body
            elif isinstance(event, h11.ConnectionClosed | h11.EndOfMessage):
                return None

    async def _stats(self, stream: trio.SocketStream, conn: h11.Connection) -> None:
        stats = {
            "open": self.open,
            "peak": self.peak,
            "completed": self.completed,
            "connections": self.connections,
            "requests": self.requests,
        }
        body = json.dumps(stats).encode()
        head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await stream.send_all(
            conn.send(h11.Response(status_code=200, headers=head))
            + conn.send(h11.Data(data=body))
            + conn.send(h11.EndOfMessage())
        )

    async def _answer(self, stream: trio.SocketStream, conn: h11.Connection, body: bytes) -> None:
        streaming, quick = asks(body)
        timing = QUICK if quick else self.timing
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            if streaming:
                await self._stream(stream, conn, timing)
            else:
                await trio.sleep(timing.ttft)
                await stream.send_all(
                    conn.send(h11.Response(status_code=200, headers=COMPLETION_HEADERS))
                    + conn.send(h11.Data(data=COMPLETION))
                    + conn.send(h11.EndOfMessage())
                )
            self.completed += 1
        finally:
            self.open -= 1

    async def _stream(
        self, stream: trio.SocketStream, conn: h11.Connection, timing: Timing
    ) -> None:
        await stream.send_all(conn.send(h11.Response(status_code=200, headers=HEADERS)))
        due = timing.first_due()
        for _ in range(timing.events):
            await trio.sleep_until(due)
            event = b"data: " + CHUNK % time.monotonic() + b"\n\n"
            await stream.send_all(conn.send(h11.Data(data=event)))
            due += timing.gap
        last = b"data: " + FINISH % time.monotonic() + b"\n\ndata: [DONE]\n\n"
        await stream.send_all(conn.send(h11.Data(data=last)) + conn.send(h11.EndOfMessage()))


def timing_arguments(description: str) -> tuple[int, Timing]:
    """``--port`` and the timing: ``--ttft-ms``, ``--events``, ``--gap-ms``, ``--spread``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft-ms", type=float, default=500.0)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--gap-ms", type=float, default=100.0)
    parser.add_argument("--spread", action="store_true", help="random phase per stream")
    args = parser.parse_args()
    timing = Timing(args.ttft_ms / 1000.0, args.events, args.gap_ms / 1000.0, args.spread)
    return args.port, timing


async def main() -> None:
    port, timing = timing_arguments(__doc__.splitlines()[0])
    upstream = Upstream(timing)
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1", backlog=65535)
    await trio.serve_listeners(upstream.serve, listeners)


if __name__ == "__main__":
    trio.run(main)
