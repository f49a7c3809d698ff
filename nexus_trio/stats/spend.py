"""The ``spend`` object of ``/v1/stats`` (docs/api.md#stats): everything, or one tenant's part.

An admin (or a gateway without inbound keys) sees the month's spend of every key and the global
budget with its amounts. A tenant key sees only its own rows (docs/keys.md#roles): its totals,
``by_backend`` and ``by_model`` are summed from them, ``by_key`` names only itself, and of the
global budget it sees the ``state`` and ``hard_limit_action`` (whether, and how, the budget
limits its use of cloud backends now), never the amounts. Both see the key budgets they may:
an admin every key's, a tenant its own.
"""

from __future__ import annotations

from typing import Any

from nexus_trio.gateway.statistics import GatewayStatistics, KeySpend
from nexus_trio.keys import ClientKey
from nexus_trio.spend.budget import BudgetState


def spend_object(statistics: GatewayStatistics) -> dict[str, Any]:
    """The whole ``spend`` object: the month's spend of every key, and the budgets."""
    stats = statistics.spend
    return {
        "enabled": statistics.keeps_spend,
        "month": stats.month,
        "total_usd": round(stats.total_usd, 8),
        "estimated_usd": round(stats.estimated_usd, 8),
        "requests": stats.requests,
        "by_key": _rounded_map(stats.by_key),
        "by_backend": _rounded_map(stats.by_backend),
        "by_model": _rounded_map(stats.by_model),
        "budget": {**_amounts(stats.budget), "hard_limit_action": stats.budget.action},
        "key_budgets": _key_budgets(statistics, list(statistics.key_budgets)),
        "own_usd": round(stats.own_usd, 8),
        "reserved_usd": round(stats.reserved_usd, 8),
        "store_up": stats.store_up,
        "stores": dict(statistics.stores),
    }


def tenant_spend_object(statistics: GatewayStatistics, key: ClientKey) -> dict[str, Any]:
    """The ``spend`` object a tenant ``key`` sees: its own rows only (module docstring)."""
    stats = statistics.spend
    own = statistics.spend_by_key.get(key.name) or KeySpend()
    budget = stats.budget
    withheld = dict.fromkeys(("limit_usd", "soft_limit_usd", "spent_usd", "remaining_usd"))
    return {
        "enabled": statistics.keeps_spend,
        "month": stats.month,
        "total_usd": round(own.usd, 8),
        "estimated_usd": round(own.estimated_usd, 8),
        "requests": own.requests,
        "by_key": {key.name: round(own.usd, 8)} if own.requests else {},
        "by_backend": _rounded_map(dict(own.by_backend or {})),
        "by_model": _rounded_map(dict(own.by_model or {})),
        "budget": {**withheld, "state": budget.level.value, "hard_limit_action": budget.action},
        "key_budgets": _key_budgets(statistics, [key.name]),
        "own_usd": round(own.own_usd, 8),
        "reserved_usd": round(own.reserved_usd, 8),
        "store_up": stats.store_up,
        "stores": dict(statistics.stores),
    }


def _key_budgets(statistics: GatewayStatistics, names: list[str]) -> dict[str, dict[str, Any]]:
    """The own budget of each key of ``names`` that has one, by key name."""
    budgets = statistics.key_budgets
    return {name: _amounts(budgets[name]) for name in sorted(names) if name in budgets}


def _amounts(budget: BudgetState) -> dict[str, Any]:
    """A budget's limits, spend, what is left (null without a limit) and state."""
    limited = budget.limit_usd > 0
    remaining = budget.remaining_usd
    return {
        "limit_usd": budget.limit_usd if limited else None,
        "soft_limit_usd": round(budget.soft_limit_usd, 8) if limited else None,
        "spent_usd": round(budget.spent_usd, 8),
        "remaining_usd": None if remaining is None else round(remaining, 8),
        "state": budget.level.value,
    }


def _rounded_map(values: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 8) for name, value in sorted(values.items())}
