"""``nexus-trio status``: a readable report of a running gateway, from its ``/v1/stats``.

It shows what the key it presents may see (docs/keys.md#roles): with a tenant key, that key's
own requests and spend, and the backends and quality every key sees.
"""

from __future__ import annotations

from typing import Any

import httpx

from nexus_trio.cli.spend_report import status_lines, usd
from nexus_trio.errors import NexusError


class StatusUnavailable(NexusError):
    """The gateway could not be asked (down, wrong URL, wrong key)."""


def fetch_stats(url: str, api_key: str | None, *, timeout: float = 5.0) -> dict[str, Any]:
    """GET ``{url}/v1/stats``.

    Raises:
        StatusUnavailable: connection failed, 401, 404 (the public port of a gateway with
            ``[admin] only``), or another non-200 answer.
    """
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{url.rstrip('/')}/v1/stats", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise StatusUnavailable(f"cannot reach the gateway at {url}: {exc}") from exc
    if response.status_code == 401:
        raise StatusUnavailable("the gateway refused the API key (use --api-key or NEXUS_API_KEY)")
    if response.status_code == 404:
        raise StatusUnavailable(
            "the gateway answered 404 for /v1/stats: with [admin] only = true, give --url the "
            "admin listener's address (docs/operations.md#admin-listener)"
        )
    if response.status_code != 200:
        raise StatusUnavailable(f"the gateway answered {response.status_code} for /v1/stats")
    stats: dict[str, Any] = response.json()
    return stats


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _budget_lines(spend: dict[str, Any], *, tenant: bool) -> list[str]:
    """The key budgets, and for a tenant the global budget's state (its amounts are withheld)."""
    if not spend.get("enabled"):
        return []
    lines = [
        f"  key budget {name} {usd(budget['limit_usd'])}: {budget['state']}, "
        f"{usd(budget['remaining_usd'])} left"
        for name, budget in spend.get("key_budgets", {}).items()
    ]
    if tenant:
        budget = spend["budget"]
        lines.append(
            f"  gateway budget: {budget['state']} (past it: {budget['hard_limit_action']}); "
            "its amounts are shown to admin keys only"
        )
    return lines


def render_status(url: str, stats: dict[str, Any]) -> str:
    """The report: request totals and spend, then one line per backend and per agent (its
    model's residency, health and quality)."""
    lines = _summary_lines(url, stats)
    lines.append("")
    rows = [_HEADER, *_backend_rows(stats["backends"])]
    if len(rows) == 1:
        lines.append("no backends configured")
    else:
        lines.extend(_table(rows))
    return "\n".join(lines)


def _summary_lines(url: str, stats: dict[str, Any]) -> list[str]:
    """The request totals, whose view this is, a pending restart, and the spend."""
    requests = stats["requests"]
    lines = [
        f"nexus-trio at {url}: up {stats['uptime_seconds']} s, "
        f"{requests['in_flight']} in flight, {requests['total']} requests "
        f"({requests['success']} ok, {requests['errors']} errors, "
        f"{requests['client_errors']} client errors, {requests['cancelled']} cancelled)",
    ]
    tenant = stats.get("role") == "tenant"
    if tenant:
        lines.append("as a tenant key: the requests and spend shown are this key's own")
    if stats.get("restart_required"):
        lines.append("note: a reload changed settings that need a restart")
    if "spend" in stats:
        lines.extend(status_lines(stats["spend"]))
        lines.extend(_budget_lines(stats["spend"], tenant=tenant))
    return lines


_HEADER = [
    "BACKEND",
    "MODEL",
    "LOADED",
    "HEALTH",
    "QUALITY",
    "ERR 1H",
    "OK 24H",
    "TTFT AVG",
    "TTFT P90",
    "REQ 1H",
    "PENDING",
]


def _backend_rows(backends: list[dict[str, Any]]) -> list[list[str]]:
    """One row per backend, each followed by one row per agent (its model)."""
    rows = []
    for backend in backends:
        rows.append(
            [
                backend["name"],
                f"({backend['type']})",
                "",
                backend["status"],
                *_quality_cells(backend["quality"] or {}),
                str(backend["pending"]),
            ]
        )
        rows.extend(
            [
                "",
                agent["model"],
                _residency(agent.get("residency")),
                "",
                *_quality_cells(agent["quality"] or {}),
                "",
            ]
            for agent in backend["agents"]
        )
    return rows


def _residency(residency: dict[str, Any] | None) -> str:
    """Whether the model is loaded on its backend (docs/routing.md#residency); "-" when the
    backend has not said."""
    state = (residency or {}).get("state", "unknown")
    return "-" if state == "unknown" else str(state)


def _quality_cells(quality: dict[str, Any]) -> list[str]:
    """The quality columns of a backend's or an agent's row ("-" where unknown)."""
    return [
        quality.get("state", "-"),
        _percent(quality.get("error_rate_1h")),
        _percent(quality.get("success_rate_24h")),
        _ms(quality.get("avg_ttft_ms")),
        _ms(quality.get("p90_ttft_ms")),
        str(quality.get("request_count_1h", 0)),
    ]
