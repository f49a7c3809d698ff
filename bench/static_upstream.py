"""The built-in static upstream, used by ``bench/run.py`` when nginx is not installed.

Run as ``python bench/static_upstream.py --port N``. A minimal HTTP/1.1 keep-alive server on
asyncio that answers each request for a path of :func:`payloads.upstream_routes` (any method)
with that route's prebuilt response and anything else with 404. It understands exactly what
the gateway and the load generators send: requests with no body or a ``Content-Length`` one,
pipelined or not; it is a stand-in, far slower than nginx, and the report says it was used.
"""

from __future__ import annotations

import argparse
import asyncio

from payloads import upstream_routes


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


_RESPONSES = {
    path: _response("200 OK", content_type, body)
    for path, (content_type, body) in upstream_routes().items()
}
_NOT_FOUND = _response("404 Not Found", "text/plain", b"not found\n")


class StaticHttp(asyncio.Protocol):
    """One client connection: parse whole requests out of the buffer, answer each at once."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            path = head[0].split(" ")[1].partition("?")[0]
            self.transport.write(_RESPONSES.get(path, _NOT_FOUND))


async def serve(port: int) -> None:
    """Serve on 127.0.0.1:``port`` until cancelled."""
    server = await asyncio.get_running_loop().create_server(
        StaticHttp, "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
