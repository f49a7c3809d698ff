"""The floor of the gateway benchmark: a bare forwarder on the gateway's own server stack.

Run as ``python bench/floor_app.py --port N --upstream URL``, ``URL`` being a backend URL as in
the gateway's config (``http://127.0.0.1:M/plain``). It is served by ``hypercorn.trio.serve``
with the settings of ``bench/noop_app.py`` (the gateway's front end: keep-alive, backlog, no
access log) and forwards every request as a POST to ``URL`` + ``/v1/chat/completions``
through the gateway's own upstream transport (one ``KeepAliveTransport`` for the process): it
reads the whole request body, sends it with only ``host``, ``content-type`` and
``content-length``, reads the whole response body and answers with the upstream's status,
content-type and body. No routing, no accounting, no metrics: this is what hypercorn and the
gateway's keep-alive transport cost with zero gateway logic, the floor any gateway on this
stack can reach.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Awaitable, Callable

import httpx
import hypercorn.trio
import trio
from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from nexus_trio.upstream.transport import KeepAliveTransport

CHAT_PATH = "/v1/chat/completions"

App = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]


def make_app(upstream: str) -> App:
    """The forwarder to ``upstream`` + :data:`CHAT_PATH`, with one transport for its lifetime."""
    url = httpx.URL(upstream.rstrip("/") + CHAT_PATH)
    host = url.netloc
    transport = KeepAliveTransport()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        """Forward every HTTP request to the upstream; accept lifespan events."""
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await transport.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        request = httpx.Request(
            "POST",
            url,
            headers=[
                (b"host", host),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            stream=httpx.ByteStream(body),
        )
        response = await transport.handle_async_request(request)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        headers = [(b"content-length", str(len(content)).encode())]
        content_type = response.headers.get("content-type")
        if content_type is not None:
            headers.append((b"content-type", content_type.encode("latin-1")))
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": headers,
                "trailers": False,
            }
        )
        await send({"type": "http.response.body", "body": content, "more_body": False})

    return app


def main() -> None:
    """Serve the forwarder on 127.0.0.1 until the process is terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", metavar="URL", required=True, help="backend URL")
    args = parser.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.backlog = 1024
    config.accesslog = None
    app = make_app(args.upstream)
    trio.run(functools.partial(hypercorn.trio.serve, app, config, mode="asgi"))


if __name__ == "__main__":
    main()
