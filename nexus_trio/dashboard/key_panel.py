"""The dashboard's keys panel (docs/api.md#dashboard): every key's state, limits, spend this
month and last use, for admin keys only (a tenant's snapshot carries none of it).

Built with each admin snapshot from the statistics (spend by key) and the created keys'
in-memory index; never a secret or a digest. At most :data:`MAX_PANEL_KEYS` rows: the keys of
the file, then the created keys most recently used first; ``total`` says how many there are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from nexus_trio.config import KeyConfig
from nexus_trio.gateway.statistics import GatewayStatistics
from nexus_trio.key_store.requests import iso_time, key_state
from nexus_trio.keys import CreatedKeys

#: Rows of the panel at most (the admin API lists them all).
MAX_PANEL_KEYS = 200


def _limits(key: KeyConfig) -> dict[str, Any]:
    return {
        "requests_per_minute": key.requests_per_minute,
        "tokens_per_minute": key.tokens_per_minute,
        "max_concurrent_requests": key.max_concurrent_requests,
        "monthly_budget_usd": key.monthly_budget_usd,
        "admin": key.admin,
    }


def key_panel(
    statistics: GatewayStatistics,
    configured: Sequence[KeyConfig],
    created: CreatedKeys,
) -> dict[str, Any]:
    """``{"total", "keys": [{name, source, state, limits..., spend_usd, last_used_at}]}``."""
    spend = statistics.spend_by_key

    def usd(name: str) -> float:
        own = spend.get(name)
        return 0.0 if own is None else round(own.usd, 6)

    rows: list[dict[str, Any]] = [
        {"name": key.name, "source": "config", "state": "active", **_limits(key)}
        | {"spend_usd": usd(key.name), "last_used_at": None}
        for key in configured
    ]
    now = time.time()
    records = sorted(created.records(), key=lambda r: -(created.last_used(r.name) or 0.0))
    for record in records[: max(MAX_PANEL_KEYS - len(rows), 0)]:
        rows.append(
            {"name": record.name, "source": "api", "state": key_state(record, now)}
            | _limits(record.config())
            | {"spend_usd": usd(record.name)}
            | {"last_used_at": iso_time(created.last_used(record.name))}
        )
    return {"total": len(configured) + len(created), "keys": rows}


#: What the snapshot calls for the panel: the statistics in, the panel out.
KeyPanel = Callable[[GatewayStatistics], dict[str, Any]]
