"""The client's side of an in-process gateway: the request bodies tests send and a raw ASGI
call for clients that go away."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import trio
from quart_trio import QuartTrio

PATH = "/v1/chat/completions"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
STREAM_CHAT = {**CHAT, "stream": True}


def bearer(token: str) -> dict[str, str]:
    """The headers that present ``token`` as a bearer key."""
    return {"authorization": f"Bearer {token}"}


class ASGICall:
    """One request driven straight through the ASGI app, with a client that can vanish.

    (Quart's test connection waits for a final body message that a disconnected client never
    gets, so disconnect tests talk ASGI directly.)
    """

    def __init__(
        self,
        app: QuartTrio,
        path: str,
        body: bytes,
        *,
        method: str = "POST",
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        self.app = app
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"content-type", b"application/json"),
                (b"host", b"gw.test"),
                *headers,
            ],
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 8000),
            "extensions": {},
        }
        self.body = body
        self.gone = trio.Event()
        self.finished = trio.Event()
        self.messages_send, self.messages = trio.open_memory_channel[dict[str, Any]](100)
        self._body_sent = False

    async def _receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        await self.messages_send.send(message)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await self.app(self.scope, self._receive, self._send)  # type: ignore[arg-type]
        finally:
            self.finished.set()

    async def next_body(self) -> bytes:
        while True:
            message = await self.messages.receive()
            if message["type"] == "http.response.body":
                body: bytes = message["body"]
                return body
