"""Waiting for state that has no event to wait on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio


async def poll(predicate: Callable[[], bool | Awaitable[bool]]) -> None:
    """Check ``predicate`` every 10 ms until it holds; the caller bounds it with ``fail_after``.

    For state with no event to wait on: another process, or counters of a simulated backend.
    """
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await trio.sleep(0.01)
