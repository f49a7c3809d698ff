"""Cancelling a proxy request when its client disconnects, without a task per request.

Theory of operation. A request whose client goes away must stop within 100 ms: its upstream
response closed, its attempt recorded ``cancelled``, its queue place given up
(docs/proxying.md#streaming). Noticing needs a task blocked in the request's ASGI ``receive()``
until ``http.disconnect`` arrives, but starting, cancelling and joining one such task per request
cost about a third of the gateway's own per-request CPU — for requests that mostly finish in
milliseconds.

So a request registers a :class:`Watch` (its ``receive`` and the cancel scope around its
work) once its body has been read, and :class:`DisconnectWatcher`, one service for the whole
process, starts a watcher task only for the requests still running :data:`GRACE_SECONDS` after
they registered. A watcher that sees ``http.disconnect`` cancels the request's scope; a request
that ends calls :meth:`Watch.finish`, which cancels its watcher if it has one. A disconnect is
therefore noticed within :data:`GRACE_SECONDS` plus a scheduling round, well inside the
100 ms promise; a request that ends within the grace period never costs a task. A request
about to wait in the admission queue calls :meth:`Watch.expedite` (watched at once: a client
that leaves while queued leaves the queue at once, docs/routing.md#queue-and-overload).

Watches are due in registration order, so the service keeps them in a deque and sleeps until
the oldest is due; with nothing registered it waits on an event (an idle gateway never wakes).
"""

from __future__ import annotations

import collections
import logging

import trio
from hypercorn.typing import ASGIReceiveCallable

log = logging.getLogger("nexus_trio.api")

#: How long a request runs unwatched (seconds): the latency added to noticing a disconnect.
GRACE_SECONDS = 0.02


class Watch:
    """One request's registration: its ``receive`` and the scope to cancel on disconnect."""

    __slots__ = (
        "_service",
        "_watcher_scope",
        "due",
        "finished",
        "receive",
        "request_scope",
        "started",
    )

    def __init__(
        self,
        service: DisconnectWatcher,
        receive: ASGIReceiveCallable,
        request_scope: trio.CancelScope,
        due: float,
    ) -> None:
        self._service = service
        self.receive = receive
        self.request_scope = request_scope
        self.due = due
        self.finished = False
        self.started = False
        self._watcher_scope: trio.CancelScope | None = None

    def expedite(self) -> None:
        """Watch from now on, not after the grace period (the request is about to wait)."""
        if not self.started and not self.finished:
            self._service.start(self)

    def finish(self) -> None:
        """The request is over: never watch it again (cancels its watcher, if any)."""
        self.finished = True
        if self._watcher_scope is not None:
            self._watcher_scope.cancel()

    async def watch(self) -> None:
        """Wait for ``http.disconnect``, then cancel the request (the watcher task's body)."""
        with trio.CancelScope() as self._watcher_scope:
            if self.finished:
                return
            try:
                while (await self.receive())["type"] != "http.disconnect":
                    pass
            except Exception:  # the server's channel is gone: so is the request
                log.debug("disconnect watch ended without a message", exc_info=True)
                return
            self.request_scope.cancel()


class DisconnectWatcher:
    """The service that starts watcher tasks for requests outliving the grace period.

    Args:
        grace_seconds: how long a registered request runs before it gets a watcher.
    """

    def __init__(self, grace_seconds: float = GRACE_SECONDS) -> None:
        self._grace = grace_seconds
        self._pending: collections.deque[Watch] = collections.deque()
        self._registered = trio.Event()
        self._nursery: trio.Nursery | None = None

    def watch(self, receive: ASGIReceiveCallable, request_scope: trio.CancelScope) -> Watch:
        """Register a request whose body has been read; call ``finish()`` when it ends.

        Never blocks. The request is cancelled (``request_scope.cancel()``) if its client
        disconnects while it runs, noticed at most ``grace_seconds`` plus a scheduling round
        late. Registrations made before :meth:`run` starts are picked up when it does.
        """
        entry = Watch(self, receive, request_scope, trio.current_time() + self._grace)
        self._pending.append(entry)
        self._registered.set()
        return entry

    def start(self, entry: Watch) -> None:
        """Start ``entry``'s watcher task now (nothing once the service has stopped)."""
        if self._nursery is not None:
            entry.started = True
            self._nursery.start_soon(entry.watch)

    @property
    def pending(self) -> int:
        """Registrations not yet past their grace period (finished ones included)."""
        return len(self._pending)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start watcher tasks for requests that outlive their grace period, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await self._start_due_watchers()
            finally:
                self._nursery = None

    async def _start_due_watchers(self) -> None:
        pending = self._pending
        while True:
            if not pending:
                self._registered = trio.Event()
                await self._registered.wait()
                continue
            await trio.sleep_until(pending[0].due)
            now = trio.current_time()
            while pending and pending[0].due <= now:
                entry = pending.popleft()
                if not entry.finished and not entry.started:
                    self.start(entry)
