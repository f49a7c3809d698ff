"""The budget's state from what the month has spent (docs/spend.md#budgets): pure functions.

The state is judged on the settled spend plus what the requests in flight have reserved
(docs/spend.md#reservations): ``ok`` below the soft limit, ``soft`` from ``soft_limit_percent``
of ``monthly_limit_usd``, ``hard`` from the limit itself. What each state means for routing is
decided by the routing package from the :class:`~nexus_trio.routing.CloudUse` it is handed;
what ``hard`` means for the request (``local_only`` or ``reject``) comes from
``hard_limit_action``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from nexus_trio.config import BudgetConfig
from nexus_trio.routing import CloudUse

#: How much each cloud use restricts, to combine the global budget with a key's.
_STRICTNESS = {CloudUse.ALLOWED: 0, CloudUse.LAST_RESORT: 1, CloudUse.NONE: 2}


def stricter(first: CloudUse, second: CloudUse) -> CloudUse:
    """The more restrictive of two cloud uses."""
    return first if _STRICTNESS[first] >= _STRICTNESS[second] else second


class BudgetLevel(enum.StrEnum):
    OK = "ok"
    SOFT = "soft"
    HARD = "hard"


@dataclass(frozen=True, slots=True)
class BudgetState:
    """One budget (global, or a key's) at one moment; ``limit_usd`` 0 = no budget."""

    month: str
    #: Settled spend: what answered requests were charged.
    spent_usd: float
    limit_usd: float
    soft_limit_usd: float
    level: BudgetLevel
    action: str
    #: Held by the requests in flight (docs/spend.md#reservations); counted in ``level``.
    reserved_usd: float = 0.0

    @property
    def remaining_usd(self) -> float | None:
        """USD neither spent nor reserved before the hard limit; None without a budget."""
        if self.limit_usd <= 0:
            return None
        return max(self.limit_usd - self.spent_usd - self.reserved_usd, 0.0)

    @property
    def spent(self) -> bool:
        """Settled spend alone has reached the limit (reservations aside)."""
        return 0 < self.limit_usd <= self.spent_usd

    @property
    def cloud_use(self) -> CloudUse:
        """What routing may do with cloud backends in this state."""
        if self.level is BudgetLevel.HARD:
            return CloudUse.NONE
        if self.level is BudgetLevel.SOFT:
            return CloudUse.LAST_RESORT
        return CloudUse.ALLOWED

    @property
    def rejects(self) -> bool:
        """Past the hard limit with ``hard_limit_action = "reject"``: answer 429."""
        return self.level is BudgetLevel.HARD and self.action == "reject"


def budget_state(
    month: str,
    spent_usd: float,
    config: BudgetConfig,
    *,
    limit_usd: float | None = None,
    reserved_usd: float = 0.0,
) -> BudgetState:
    """The state of ``config``'s budget after ``spent_usd`` in ``month`` with ``reserved_usd``
    held by requests in flight.

    ``limit_usd`` replaces ``monthly_limit_usd`` (a key's own budget, judged with the same
    soft limit and action).
    """
    limit = config.monthly_limit_usd if limit_usd is None else limit_usd
    return BudgetState(
        month=month,
        spent_usd=spent_usd,
        limit_usd=limit,
        soft_limit_usd=limit * config.soft_limit_percent / 100.0,
        level=level_of(spent_usd + reserved_usd, limit, config.soft_limit_percent),
        action=config.hard_limit_action,
        reserved_usd=reserved_usd,
    )


def level_of(committed_usd: float, limit_usd: float, soft_limit_percent: float) -> BudgetLevel:
    """The level of a budget of ``limit_usd`` (0 = none) with ``committed_usd`` spent and
    reserved."""
    if limit_usd <= 0 or committed_usd < limit_usd * soft_limit_percent / 100.0:
        return BudgetLevel.OK
    return BudgetLevel.HARD if committed_usd >= limit_usd else BudgetLevel.SOFT
