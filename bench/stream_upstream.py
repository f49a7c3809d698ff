"""A timed SSE upstream for ``bench/streams.py``: holds as many streams as it is sent.

Run as ``python bench/stream_upstream.py --port N --ttft-ms T --events E --gap-ms G``. Every
``POST`` is answered with a chat-completion event stream: the first content event after ``T``
ms, then one every ``G`` ms, ``E`` content events in all, a ``finish_reason`` event and ``data:
[DONE]``. With ``--spread`` each stream's first event comes a random part of a gap later
(uniform in ``[0, G)``), so the streams' events are spread over time as independent streams'
tokens are; without it every stream writes in the same instant. Each event carries ``"t"``, the
``time.monotonic()`` at which it was written (the clock is system-wide, so the client can
compare it with its own). ``GET /stats`` answers ``{"open": N, "peak": N, "completed": N}``:
streams open now, the most open at once, and streams written to their end. HTTP is h11 over
trio; event bodies are prebuilt but for the timestamp.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import h11
import trio

CHUNK = (
    b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","model":"bench",'
    b'"choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}],"t":%.6f}'
)
FINISH = (
    b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","model":"bench",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"t":%.6f}'
)
HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class Upstream:
    def __init__(self, ttft: float, events: int, gap: float, spread: bool) -> None:
        self.ttft = ttft
        self.events = events
        self.gap = gap
        self.spread = spread
        self.open = 0
        self.peak = 0
        self.completed = 0

    async def serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._request(stream, conn)
                if request is None:
                    return
                if request.method == b"GET":
                    await self._stats(stream, conn)
                else:
                    await self._stream(stream, conn)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return

    async def _request(self, stream: trio.SocketStream, conn: h11.Connection) -> h11.Request | None:
        request: h11.Request | None = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return None
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.EndOfMessage):
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _stats(self, stream: trio.SocketStream, conn: h11.Connection) -> None:
        stats = {"open": self.open, "peak": self.peak, "completed": self.completed}
        body = json.dumps(stats).encode()
        head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await stream.send_all(
            conn.send(h11.Response(status_code=200, headers=head))
            + conn.send(h11.Data(data=body))
            + conn.send(h11.EndOfMessage())
        )

    async def _stream(self, stream: trio.SocketStream, conn: h11.Connection) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            await stream.send_all(conn.send(h11.Response(status_code=200, headers=HEADERS)))
            due = first_due(self.ttft, self.gap, self.spread)
            for _ in range(self.events):
                await trio.sleep_until(due)
                event = b"data: " + CHUNK % time.monotonic() + b"\n\n"
                await stream.send_all(conn.send(h11.Data(data=event)))
                due += self.gap
            last = b"data: " + FINISH % time.monotonic() + b"\n\ndata: [DONE]\n\n"
            await stream.send_all(conn.send(h11.Data(data=last)) + conn.send(h11.EndOfMessage()))
            self.completed += 1
        finally:
            self.open -= 1


def first_due(ttft: float, gap: float, spread: bool) -> float:
    """When a stream opened now writes its first event (trio clock)."""
    return trio.current_time() + ttft + (random.uniform(0.0, gap) if spread else 0.0)


def timing_arguments(description: str) -> argparse.Namespace:
    """``--port`` and the stream timing: ``--ttft-ms``, ``--events``, ``--gap-ms``, ``--spread``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft-ms", type=float, default=500.0)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--gap-ms", type=float, default=100.0)
    parser.add_argument("--spread", action="store_true", help="random phase per stream")
    return parser.parse_args()


async def main() -> None:
    args = timing_arguments(__doc__.splitlines()[0])
    upstream = Upstream(args.ttft_ms / 1000.0, args.events, args.gap_ms / 1000.0, args.spread)
    listeners = await trio.open_tcp_listeners(args.port, host="127.0.0.1", backlog=65535)
    await trio.serve_listeners(upstream.serve, listeners)


if __name__ == "__main__":
    trio.run(main)
