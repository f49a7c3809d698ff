"""The ceiling of the gateway benchmark: a no-op ASGI app on the gateway's own server stack.

Run as ``python bench/noop_app.py --port N``. It is served by ``hypercorn.trio.serve`` with the
settings the gateway's front end uses (``nexus_trio/runtime/front_end.py``: keep-alive, backlog, no
access log), reads each request body to its end and answers every POST with the same 700-byte
chat completion the upstream sends, so whatever the gateway does beyond that (routing,
forwarding, the upstream round trip) is what separates its throughput from this one.
It runs with the garbage-collector settings ``nexus-trio serve`` uses
(``nexus_trio/runtime/gc_tuning.py``), so the two are compared like for like.

With ``--gateway-headers`` it also sends the seven headers every proxied gateway response
carries (``X-Request-Id`` and six ``X-Nexus-*``, docs/api.md#response-headers): what those headers
alone cost the server stack.
"""

from __future__ import annotations

import argparse
import functools

import hypercorn.trio
import trio
from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from payloads import chat_completion

from nexus_trio.runtime.gc_tuning import tune_for_serving

_BODY = chat_completion()
_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
]
#: What every proxied gateway response adds (docs/api.md#http-api, docs/api.md#response-headers),
#: with this benchmark's values.
GATEWAY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-request-id", b"0b8f2c1e-5a4d-4c3b-9e2f-7d6a1b0c9e8f"),
    (b"x-nexus-backend", b"bench-plain"),
    (b"x-nexus-backend-type", b"local"),
    (b"x-nexus-model", b"bench"),
    (b"x-nexus-route-reason", b"only_candidate"),
    (b"x-nexus-attempts", b"1"),
    (b"x-nexus-privacy-zone", b"restricted"),
]


async def lifespan(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """Accept the server's lifespan events: nothing to start or stop."""
    while (await receive())["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def app(
    scope: Scope,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
    headers: list[tuple[bytes, bytes]] = _HEADERS,
) -> None:
    """Answer every HTTP request with the static completion; accept lifespan events."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    while (await receive()).get("more_body", False):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": headers, "trailers": False}
    )
    await send({"type": "http.response.body", "body": _BODY, "more_body": False})


def main() -> None:
    """Serve :func:`app` on 127.0.0.1 until the process is terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--gateway-headers",
        action="store_true",
        help="also send the 7 headers every proxied gateway response carries",
    )
    args = parser.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.backlog = 1024
    config.accesslog = None
    served = (
        functools.partial(app, headers=_HEADERS + GATEWAY_HEADERS) if args.gateway_headers else app
    )
    tune_for_serving()
    trio.run(functools.partial(hypercorn.trio.serve, served, config, mode="asgi"))


if __name__ == "__main__":
    main()
