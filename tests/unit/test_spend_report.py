"""What ``nexus-trio spend`` and ``nexus-trio status`` print about spend (docs/cli.md#spend)."""

from __future__ import annotations

from nexus_trio.cli.spend_report import render_ledger, status_lines, usd
from nexus_trio.spend import SpendRow


def test_usd_keeps_cents_and_the_digits_below_a_cent() -> None:
    assert (usd(0), usd(12.345), usd(1234.5), usd(0.000123)) == (
        "$0.00",
        "$12.35",
        "$1,234.50",
        "$0.000123",
    )


def test_ledger_table_has_a_line_per_row_and_the_total() -> None:
    rows = [
        (("default", "openai", "gpt-4o"), SpendRow(10.0, 40, 0.0)),
        (("default", "openai", "gpt-4o-mini"), SpendRow(2.5, 200, 0.5)),
    ]
    assert render_ledger("2026-12", rows).splitlines() == [
        "spend for 2026-12 (UTC)",
        "KEY      BACKEND  MODEL        REQUESTS     USD  ESTIMATED",
        "default  openai   gpt-4o             40  $10.00      $0.00",
        "default  openai   gpt-4o-mini       200   $2.50      $0.50",
        "total                               240  $12.50      $0.50",
    ]
    assert render_ledger("2026-11", []) == "no spend recorded for 2026-11"


def test_status_lines_show_the_budget_and_where_the_money_went() -> None:
    spend = {
        "enabled": True,
        "month": "2026-12",
        "total_usd": 170.0,
        "estimated_usd": 0.0,
        "requests": 12,
        "by_key": {"default": 170.0},
        "by_backend": {"openai": 170.0},
        "by_model": {"gpt-4o": 170.0},
        "budget": {
            "limit_usd": 200.0,
            "soft_limit_usd": 160.0,
            "spent_usd": 170.0,
            "remaining_usd": 30.0,
            "state": "soft",
            "hard_limit_action": "local_only",
        },
        "store_up": False,
    }
    assert status_lines(spend) == [
        "spend 2026-12: $170.00 over 12 requests ($0.00 estimated); budget $200.00: soft, "
        "$30.00 left (past it: local_only)",
        "  by key: default $170.00",
        "  by backend: openai $170.00",
        "  warning: the spend ledger is not being written (see the log)",
    ]
    assert status_lines({"enabled": False}) == ["spend: not tracked (nothing priced or budgeted)"]
