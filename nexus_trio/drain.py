"""Shutdown state shared by the supervisor and the request path (docs/operations.md#drain).

Theory of operation. The first SIGTERM/SIGINT calls :meth:`Drain.request`: health endpoints
turn ``draining`` at once. After ``drain_delay_seconds`` the supervisor calls
:meth:`Drain.close_listener`, which fires hypercorn's ``shutdown_trigger`` (the listener
closes, idle keep-alive connections close) and fixes the drain deadline. From then on a request
arriving on an existing connection is answered 503 ``shutting_down``.

Work in flight keeps running until the deadline. Every request-level and stream-read cancel
scope is registered with :meth:`watch`, which caps its deadline at the drain deadline, both
for scopes opened after the drain began and — because the set of live scopes is kept — for a
relay already blocked waiting for its next upstream event. When such a scope fires the caller
asks :meth:`expired` to tell a drain cut from its own timeouts.
"""

from __future__ import annotations

import math
import weakref

import trio


class Drain:
    """Whether and until when the gateway is draining."""

    def __init__(self) -> None:
        self.requested = trio.Event()
        self.listener_closed = trio.Event()
        self.deadline = math.inf
        self._scopes: weakref.WeakSet[trio.CancelScope] = weakref.WeakSet()

    @property
    def draining(self) -> bool:
        return self.requested.is_set()

    def request(self) -> None:
        """Begin draining: health turns ``draining``; requests are still served."""
        self.requested.set()

    def close_listener(self, drain_timeout: float) -> None:
        """Stop accepting and start the drain deadline for in-flight work."""
        self.requested.set()
        self.deadline = trio.current_time() + drain_timeout
        for scope in list(self._scopes):
            scope.deadline = min(scope.deadline, self.deadline)
        self.listener_closed.set()

    def watch(self, scope: trio.CancelScope) -> None:
        """Cap ``scope`` at the drain deadline, now and if the drain begins later."""
        if self.deadline < scope.deadline:  # (setting a deadline costs, even an equal one)
            scope.deadline = self.deadline
        self._scopes.add(scope)

    def expired(self) -> bool:
        """Whether the drain deadline has passed."""
        return trio.current_time() >= self.deadline

    async def wait_listener_closed(self) -> None:
        """Block until the listener should close (hypercorn's ``shutdown_trigger``)."""
        await self.listener_closed.wait()
