"""One client TCP connection driven by hand (h11)."""

from __future__ import annotations

import trio


class RawConnection:
    """One client TCP connection driven by hand (h11), for keep-alive and disconnect tests."""

    def __init__(self, stream: trio.SocketStream) -> None:
        import h11

        self._h11 = h11
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def send_request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
    ) -> None:
        h11 = self._h11
        all_headers = [("host", "gateway"), ("content-length", str(len(body))), *headers]
        data = self.conn.send(h11.Request(method=method, target=path, headers=all_headers))
        data += self.conn.send(h11.Data(data=body)) if body else b""
        data += self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(data)

    async def next_event(self) -> object:
        h11 = self._h11
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.stream.receive_some(65536))

    async def read_response(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of the next response (whole)."""
        h11 = self._h11
        status = 0
        headers: dict[str, str] = {}
        body = b""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return status, headers, body

    async def wait_eof(self) -> bytes:
        """Read until the server closes; returns whatever arrived before EOF."""
        data = b""
        while True:
            try:
                chunk = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return data
            if not chunk:
                return data
            data += chunk

    async def aclose(self) -> None:
        await self.stream.aclose()
