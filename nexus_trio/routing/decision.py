"""How a routing pipeline ends (docs/routing.md#pipeline): route to an agent, queue, or reject.

:class:`Reject` also knows how to answer the client (docs/proxying.md#when-nothing-can-serve): the
message, the reason codes for ``X-Nexus-Rejection-Reasons`` and the ``Retry-After`` seconds, or none
when no wait helps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nexus_trio.routing.intent import Agent, Rejection


@dataclass(frozen=True, slots=True)
class Route:
    """Send the attempt to ``agent``; ``reason`` goes to ``X-Nexus-Route-Reason``."""

    agent: Agent
    reason: str
    resolved_model: str
    #: The agents routing excluded on the way (for ``nexus_reconciler_exclusions_total``).
    rejections: tuple[Rejection, ...] = ()


@dataclass(frozen=True, slots=True)
class Queue:
    """Every surviving candidate is at capacity: wait for a slot on one of ``agents``."""

    resolved_model: str
    reason: str
    agents: tuple[Agent, ...]


@dataclass(frozen=True, slots=True)
class Reject:
    """No candidate survived routing.

    With ``model_known`` false no backend serves the model at all, or the request may not use
    it (404 ``model_not_found``, whose message the request path builds from the registry);
    otherwise it is a 503 ``no_available_backend``. An empty ``rejections`` means every
    candidate was already tried or skipped by this request.
    """

    resolved_model: str
    rejections: tuple[Rejection, ...]
    model_known: bool

    @property
    def all_permanent(self) -> bool:
        """True when there are rejections and waiting cures none of them."""
        return bool(self.rejections) and all(r.permanent for r in self.rejections)

    def retry_after_seconds(self) -> int | None:
        """Whole seconds until the earliest possible recovery, at least 1.

        Returns:
            None when every rejection is permanent (send no ``Retry-After`` and
            ``x-should-retry: false``); 1 when nothing tells when a recovery may come.
        """
        if self.all_permanent:
            return None
        waits = [r.retry_after for r in self.rejections if r.retry_after is not None]
        if not waits:
            return 1
        return max(1, math.ceil(min(waits)))

    def reason_codes(self) -> list[str]:
        """Distinct reason codes in order of first appearance (``X-Nexus-Rejection-Reasons``)."""
        return list(dict.fromkeys(r.reason.value for r in self.rejections))

    def message(self) -> str:
        """The 503 message, e.g. ``No backend can serve 'm' now: 2 excluded (1 unhealthy, ...)``."""
        head = f"No backend can serve '{self.resolved_model}' now"
        if not self.rejections:
            return f"{head}: every candidate was already tried."
        counts: dict[str, int] = {}
        for rejection in self.rejections:
            counts[rejection.reason.value] = counts.get(rejection.reason.value, 0) + 1
        parts = ", ".join(f"{count} {reason}" for reason, count in counts.items())
        return f"{head}: {len(self.rejections)} excluded ({parts})"


#: What :meth:`Pipeline.decide` returns.
Decision = Route | Queue | Reject
