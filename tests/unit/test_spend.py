"""Spend in memory and on disk: the month's tally and its rollover, the budget's states, the
SQLite ledger and its start-up errors (docs/spend.md#budgets, docs/spend.md#ledger)."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from pathlib import Path

import pytest

from nexus_trio.config import BudgetConfig
from nexus_trio.errors import StateError
from nexus_trio.routing import CloudUse
from nexus_trio.spend import (
    BudgetLevel,
    Ledger,
    SpendBook,
    SpendRow,
    SpendTally,
    budget_state,
    month_bounds,
    month_of,
)
from nexus_trio.spend.ledger import FILE_NAME


class FakeClock:
    """Wall-clock seconds that only move when told."""

    def __init__(self, when: dt.datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: dt.datetime) -> None:
        self.now = when.timestamp()


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)  # type: ignore[misc]


def test_months_are_utc_calendar_months() -> None:
    assert month_of(utc(2026, 12, 31, 23, 59, 59).timestamp()) == "2026-12"
    assert month_of(utc(2027, 1, 1).timestamp()) == "2027-01"
    assert month_bounds("2026-12") == (utc(2026, 12, 1).timestamp(), utc(2027, 1, 1).timestamp())


def test_tally_rolls_over_at_midnight_utc_on_the_first_keeping_old_deltas_pending() -> None:
    clock = FakeClock(utc(2026, 1, 31, 23, 59, 59))
    tally = SpendTally(clock)
    tally.charge(("default", "cloud", "gpt"), 1.5, estimated=False)
    tally.charge(("default", "cloud", "gpt"), 0.5, estimated=True)
    assert (tally.month, tally.total_usd) == ("2026-01", 2.0)
    clock.set(utc(2026, 2, 1))
    tally.charge(("default", "cloud", "gpt"), 0.25, estimated=False)
    assert (tally.month, tally.total_usd) == ("2026-02", 0.25)
    assert tally.rows == {("default", "cloud", "gpt"): SpendRow(0.25, 1, 0.0)}
    assert tally.take_pending() == {
        ("2026-01", "default", "cloud", "gpt"): SpendRow(2.0, 2, 0.5),
        ("2026-02", "default", "cloud", "gpt"): SpendRow(0.25, 1, 0.0),
    }
    assert tally.pending == {}


def test_a_failed_write_gives_deltas_back_merged_with_newer_ones() -> None:
    tally = SpendTally(FakeClock(utc(2026, 3, 3)))
    key = ("default", "b", "m")
    tally.charge(key, 1.0, estimated=False)
    taken = tally.take_pending()
    tally.charge(key, 2.0, estimated=False)
    tally.give_back(taken)
    assert tally.pending == {("2026-03", *key): SpendRow(3.0, 2, 0.0)}


def test_restore_only_loads_the_current_month() -> None:
    tally = SpendTally(FakeClock(utc(2026, 3, 3)))
    rows = [(("default", "b", "m"), SpendRow(4.0, 8, 1.0))]
    tally.restore("2026-02", rows)
    assert tally.total_usd == 0.0
    tally.restore("2026-03", rows)
    assert tally.total_usd == 4.0
    assert tally.pending == {}


@pytest.mark.parametrize(
    ("spent", "level", "cloud_use"),
    [
        (0.0, BudgetLevel.OK, CloudUse.ALLOWED),
        (79.99, BudgetLevel.OK, CloudUse.ALLOWED),
        (80.0, BudgetLevel.SOFT, CloudUse.LAST_RESORT),
        (99.99, BudgetLevel.SOFT, CloudUse.LAST_RESORT),
        (100.0, BudgetLevel.HARD, CloudUse.NONE),
    ],
)
def test_budget_levels(spent: float, level: BudgetLevel, cloud_use: CloudUse) -> None:
    state = budget_state("2026-03", spent, BudgetConfig(monthly_limit_usd=100.0))
    assert (state.level, state.cloud_use, state.rejects) == (level, cloud_use, False)
    assert state.remaining_usd == pytest.approx(max(100.0 - spent, 0.0))


def test_reject_action_rejects_only_past_the_hard_limit() -> None:
    config = BudgetConfig(monthly_limit_usd=10.0, hard_limit_action="reject")
    assert not budget_state("2026-03", 9.99, config).rejects
    assert budget_state("2026-03", 10.0, config).rejects


def test_no_budget_is_always_ok() -> None:
    state = budget_state("2026-03", 1e9, BudgetConfig())
    assert (state.level, state.remaining_usd) == (BudgetLevel.OK, None)


def test_book_budget_starts_from_zero_in_a_new_month() -> None:
    clock = FakeClock(utc(2026, 4, 30, 23, 0))
    book = SpendBook(BudgetConfig(monthly_limit_usd=1.0), clock)
    book.charge("default", "cloud", "gpt", 1.0, estimated=False)
    assert book.budget().level is BudgetLevel.HARD
    assert book.seconds_to_month_end() == pytest.approx(3600.0)
    clock.set(utc(2026, 5, 1))
    assert (book.budget().level, book.budget().month) == (BudgetLevel.OK, "2026-05")
    stats = book.statistics()
    assert (stats.month, stats.total_usd, stats.by_backend) == ("2026-05", 0.0, {})


def test_ledger_adds_deltas_and_reads_a_month_back(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "state")
    ledger.add({("2026-03", "default", "cloud", "gpt"): SpendRow(1.0, 2, 0.5)})
    ledger.add(
        {
            ("2026-03", "default", "cloud", "gpt"): SpendRow(0.5, 1, 0.0),
            ("2026-02", "default", "cloud", "gpt"): SpendRow(7.0, 1, 0.0),
        }
    )
    ledger.close()
    reopened = Ledger.open_read_only(tmp_path / "state")
    assert reopened.month("2026-03") == [(("default", "cloud", "gpt"), SpendRow(1.5, 3, 0.5))]
    assert reopened.months() == ["2026-03", "2026-02"]
    journal = sqlite3.connect(tmp_path / "state" / FILE_NAME).execute("PRAGMA journal_mode")
    assert journal.fetchone() == ("wal",)


def test_a_corrupt_ledger_is_a_state_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(
        StateError, match=re.escape(f"spend ledger {tmp_path / FILE_NAME}: cannot open")
    ):
        Ledger.open(tmp_path)


def test_a_directory_that_cannot_be_created_is_a_state_error(tmp_path: Path) -> None:
    # (Permission bits do not stop root, who runs CI: a file in the way and /proc do.)
    (tmp_path / "taken").write_text("a file, not a directory")
    with pytest.raises(StateError, match=r"taken/spend\.sqlite3: cannot create its directory"):
        Ledger.open(tmp_path / "taken")
    with pytest.raises(StateError, match="cannot create its directory"):
        Ledger.open(Path("/proc/nexus-trio-state"))


def test_a_ledger_that_cannot_be_opened_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).mkdir()
    with pytest.raises(StateError, match=re.escape(f"{FILE_NAME}: cannot open it: unable to open")):
        Ledger.open(tmp_path)


def test_reading_a_missing_ledger_says_so(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no ledger there"):
        Ledger.open_read_only(tmp_path)
