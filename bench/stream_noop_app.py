"""The ceiling of ``bench/streams.py``: timed event streams from the gateway's server stack alone.

Run as ``python bench/stream_noop_app.py --port N --ttft-ms T --events E --gap-ms G``. An ASGI
app on ``hypercorn.trio.serve`` with the gateway's front-end settings that answers every POST
itself as ``stream_upstream.py`` does (the same events, stamped with ``time.monotonic()`` when
sent; a request not asking ``"stream": true`` gets the same completion after the same first-token
time; ``"bench_quick": true`` is answered at once): no routing, no upstream, no relay. What
separates the gateway from it is the gateway's own work per event and per connection; what
separates it from the upstream's timing is what hypercorn and trio cost per event.
It runs with the garbage-collector settings ``nexus-trio serve`` uses
(``nexus_trio/runtime/gc_tuning.py``), so the two are compared like for like.
"""

from __future__ import annotations

import functools
import time

import hypercorn.trio
import trio
from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from noop_app import lifespan
from stream_upstream import (
    CHUNK,
    COMPLETION,
    COMPLETION_HEADERS,
    FINISH,
    HEADERS,
    QUICK,
    Timing,
    asks,
    timing_arguments,
)

from nexus_trio.runtime.gc_tuning import tune_for_serving


async def app(
    scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable, *, timing: Timing
) -> None:
    """Answer every HTTP request as the upstream would; accept lifespan events."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    streaming, quick = asks(body)
    if quick:
        timing = QUICK
    if not streaming:
        await trio.sleep(timing.ttft)
        start = {"type": "http.response.start", "status": 200, "headers": COMPLETION_HEADERS}
        await send({**start, "trailers": False})
        await send({"type": "http.response.body", "body": COMPLETION, "more_body": False})
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": HEADERS, "trailers": False}
    )
    due = timing.first_due()
    for _ in range(timing.events):
        await trio.sleep_until(due)
        event = b"data: " + CHUNK % time.monotonic() + b"\n\n"
        await send({"type": "http.response.body", "body": event, "more_body": True})
        due += timing.gap
    last = b"data: " + FINISH % time.monotonic() + b"\n\ndata: [DONE]\n\n"
    await send({"type": "http.response.body", "body": last, "more_body": False})


def main() -> None:
    port, timing = timing_arguments(__doc__.splitlines()[0])
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.backlog = 8192
    config.accesslog = None
    tune_for_serving()
    served = functools.partial(app, timing=timing)
    trio.run(functools.partial(hypercorn.trio.serve, served, config, mode="asgi"))


if __name__ == "__main__":
    main()
