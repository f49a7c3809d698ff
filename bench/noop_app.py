"""The ceiling of the gateway benchmark: a no-op ASGI app on the gateway's own server stack.

Run as ``python bench/noop_app.py --port N``. It is served by ``hypercorn.trio.serve`` with the
settings the gateway's front end uses (``nexus_trio/api/server.py``: keep-alive, backlog, no
access log), reads each request body to its end and answers every POST with the same 700-byte
chat completion the upstream sends, so whatever the gateway does beyond that (routing,
forwarding, the upstream round trip) is what separates its throughput from this one.
"""

from __future__ import annotations

import argparse
import functools

import hypercorn.trio
import trio
from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from payloads import chat_completion

_BODY = chat_completion()
_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
]


async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """Answer every HTTP request with the static completion; accept lifespan events."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body", False):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": _HEADERS, "trailers": False}
    )
    await send({"type": "http.response.body", "body": _BODY, "more_body": False})


def main() -> None:
    """Serve :func:`app` on 127.0.0.1 until the process is terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.backlog = 1024
    config.accesslog = None
    trio.run(functools.partial(hypercorn.trio.serve, app, config, mode="asgi"))


if __name__ == "__main__":
    main()
