"""The clock of one attempt: its own timeout, when it starts, and whose a cut-short attempt
is (docs/proxying.md#timeouts, docs/quality.md#outcomes).

Theory of operation. An attempt's own timeout (:func:`attempt_timeout`) starts when the
request is sent, that is when it holds a connection slot of the backend's pool
(:meth:`AttemptClock.sent`, called by the upstream client). Everything before — reading the
client's body, the admission queue, earlier attempts, the wait for a slot — is not the
backend's time. The attempt runs inside :attr:`AttemptClock.scope`, whose deadline stays
infinite until the request is sent; the streaming TTFT is measured from the same moment.

The request deadline (``server.request_timeout_seconds`` from the request's start) may cut an
attempt short before its own timeout ran out. The attempt is then the backend's failure only
when it ran for nearly all a backend can ever be given, :data:`FULL_SHARE` of
``min(own timeout, request_timeout_seconds)``; otherwise it is ``cancelled``, the gateway's
doing. So a backend that hangs is failed by the requests that reach it without a long wait,
and a healthy backend that a request reaches late is not.
"""

from __future__ import annotations

import math

import trio

from nexus_trio.config import ServerConfig

#: The share of ``min(own timeout, request_timeout_seconds)`` an attempt cut short by the
#: request deadline must have run for to be the backend's failure.
FULL_SHARE = 0.9


def attempt_timeout(
    server: ServerConfig, backend_seconds: float | None, stream: bool, cold: bool = False
) -> float:
    """How long one attempt may take before its answer (streams: its first event).

    A backend's ``timeout_seconds`` replaces ``server.attempt_timeout_seconds`` for it, and
    also bounds a stream's wait for its first event when shorter than
    ``server.first_token_timeout_seconds``. An attempt whose model must load first (``cold``)
    gets ``server.cold_start_allowance_seconds`` more (docs/quality.md#cold-starts).
    """
    allowance = server.cold_start_allowance_seconds if cold else 0.0
    if stream:
        first = server.first_token_timeout_seconds
        return allowance + (first if backend_seconds is None else min(first, backend_seconds))
    own = server.attempt_timeout_seconds if backend_seconds is None else backend_seconds
    return allowance + own


class AttemptClock:
    """The timing of one attempt, from its send to its end."""

    __slots__ = ("_full_run", "request_deadline", "scope", "sent_at", "timeout")

    def __init__(self, timeout: float, *, request_timeout: float, request_deadline: float) -> None:
        self.timeout = timeout
        self.request_deadline = request_deadline
        self._full_run = FULL_SHARE * min(timeout, request_timeout)
        #: The attempt's own deadline: none until it is sent.
        self.scope = trio.CancelScope(deadline=math.inf)
        #: ``trio.current_time()`` when the request got its connection slot; inf before.
        self.sent_at = math.inf

    def sent(self) -> None:
        """The request holds its connection slot: its own timeout starts now (first call only)."""
        if self.sent_at == math.inf:
            self.sent_at = now = trio.current_time()
            self.scope.deadline = now + self.timeout

    def running_seconds(self, now: float) -> float:
        """Seconds since the send (0 while not sent)."""
        return max(now - self.sent_at, 0.0)

    def cut_short_is_failure(self, now: float) -> bool:
        """Whether an attempt ending at ``now`` with no outcome of its own is the backend's failure.

        True only when the request deadline has passed and the attempt ran for at least
        :data:`FULL_SHARE` of ``min(own timeout, request_timeout_seconds)`` since its send. A
        client gone before the deadline, or an attempt that was never sent, is never one.
        """
        return now >= self.request_deadline and self.running_seconds(now) >= self._full_run
