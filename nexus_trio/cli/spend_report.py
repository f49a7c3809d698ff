"""Spend for people: the ``nexus-trio spend`` table from the ledger, and the spend lines of
``nexus-trio status`` from ``/v1/stats`` (docs/cli.md#spend, docs/cli.md#status)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nexus_trio.spend.tally import SpendKey, SpendRow


def usd(value: float) -> str:
    """Dollars with cents, and more digits below a cent (``$0.000123``)."""
    return f"${value:,.2f}" if abs(value) >= 0.01 or value == 0 else f"${value:.6f}"


def render_ledger(month: str, rows: Sequence[tuple[SpendKey, SpendRow]]) -> str:
    """The month's ledger as a table: one line per (key, backend, model), then the total."""
    if not rows:
        return f"no spend recorded for {month}"
    table = [["KEY", "BACKEND", "MODEL", "REQUESTS", "USD", "ESTIMATED"]]
    total = SpendRow()
    for (key, backend, model), row in rows:
        table.append([key, backend, model, str(row.requests), usd(row.usd), usd(row.estimated_usd)])
        total.add(row.usd, row.requests, row.estimated_usd)
    table.append(["total", "", "", str(total.requests), usd(total.usd), usd(total.estimated_usd)])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = [
        "  ".join(
            cell.rjust(width) if index >= 3 else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in table
    ]
    return "\n".join([f"spend for {month} (UTC)", *lines])


def status_lines(spend: dict[str, Any]) -> list[str]:
    """The spend part of ``nexus-trio status``, from the ``spend`` object of ``/v1/stats``."""
    if not spend.get("enabled"):
        return ["spend: not tracked (nothing priced or budgeted)"]
    budget = spend["budget"]
    head = (
        f"spend {spend['month']}: {usd(spend['total_usd'])} over {spend['requests']} requests"
        f" ({usd(spend['estimated_usd'])} estimated)"
    )
    if budget["limit_usd"]:
        head += (
            f"; budget {usd(budget['limit_usd'])}: {budget['state']}, "
            f"{usd(budget['remaining_usd'])} left (past it: {budget['hard_limit_action']})"
        )
    lines = [head]
    for label, field in (("by key", "by_key"), ("by backend", "by_backend")):
        parts = [f"{name} {usd(value)}" for name, value in sorted(spend[field].items())]
        if parts:
            lines.append(f"  {label}: " + ", ".join(parts))
    stores = spend.get("stores", {"ledger": spend["store_up"]})
    if not stores.get("ledger", True):
        lines.append("  warning: the spend ledger is not being written (see the log)")
    if not stores.get("redis", True):
        lines.append(
            "  warning: the shared store is unreachable: this gateway counts on its own"
            " (see the log)"
        )
    elif "redis" in stores:
        lines.append(f"  fleet: this gateway's ledger {usd(spend['own_usd'])} of the total")
    return lines
