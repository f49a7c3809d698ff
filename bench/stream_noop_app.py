"""The ceiling of ``bench/streams.py``: timed event streams from the gateway's server stack alone.

Run as ``python bench/stream_noop_app.py --port N --ttft-ms T --events E --gap-ms G``. An ASGI
app on ``hypercorn.trio.serve`` with the gateway's front-end settings that answers every POST
itself with the event stream ``stream_upstream.py`` sends (the same events, stamped with
``time.monotonic()`` when sent): no routing, no upstream, no relay. What separates the gateway
from it is the gateway's own work per event; what separates it from the upstream's timing is
what hypercorn and trio cost per event.
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
from stream_upstream import CHUNK, FINISH, first_due, timing_arguments

from nexus_trio.runtime.gc_tuning import tune_for_serving

_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def app(
    scope: Scope,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
    *,
    ttft: float,
    events: int,
    gap: float,
    spread: bool,
) -> None:
    """Stream ``events`` stamped events to every HTTP request; accept lifespan events."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    while (await receive()).get("more_body", False):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": _HEADERS, "trailers": False}
    )
    due = first_due(ttft, gap, spread)
    for _ in range(events):
        await trio.sleep_until(due)
        body = b"data: " + CHUNK % time.monotonic() + b"\n\n"
        await send({"type": "http.response.body", "body": body, "more_body": True})
        due += gap
    last = b"data: " + FINISH % time.monotonic() + b"\n\ndata: [DONE]\n\n"
    await send({"type": "http.response.body", "body": last, "more_body": False})


def main() -> None:
    args = timing_arguments(__doc__.splitlines()[0])
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.backlog = 8192
    config.accesslog = None
    served = functools.partial(
        app,
        ttft=args.ttft_ms / 1000.0,
        events=args.events,
        gap=args.gap_ms / 1000.0,
        spread=args.spread,
    )
    tune_for_serving()
    trio.run(functools.partial(hypercorn.trio.serve, served, config, mode="asgi"))


if __name__ == "__main__":
    main()
