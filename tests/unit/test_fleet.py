"""A fleet's pure parts (docs/spend.md#a-fleet, docs/keys.md#a-fleet): the ``[state] store``
setting and its redaction, the store's encoding, what the ledger owes, the rate windows, the
limiter's share of the fleet's consumption, and the tally's fleet totals."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from nexus_trio.cli.spend_report import status_lines
from nexus_trio.config import BudgetConfig, KeyConfig, parse_config, render_config
from nexus_trio.errors import ConfigError
from nexus_trio.fleet.protocol import (
    decode_rows,
    encode_rate_field,
    encode_rows,
    others_rate_counts,
    window_of,
)
from nexus_trio.fleet.rates import RateShare
from nexus_trio.keys import RateLimiter
from nexus_trio.spend import BudgetLevel, Ledger, SpendBook, SpendRow, SpendTally
from nexus_trio.spend.ledger import FILE_NAME
from nexus_trio.spend.outbox import Outbox

JAN = dt.datetime(2026, 1, 15, tzinfo=dt.UTC).timestamp()
GPT = ("team", "cloud", "gpt")
MINI = ("other", "cloud", "mini")


def state(lines: str) -> str:
    return f"[state]\n{lines}\n"


@pytest.mark.parametrize(
    ("store", "message"),
    [
        (
            "http://h:6379",
            "store must be a redis:// or rediss:// URL with a host, got 'http://h:6379'",
        ),
        ("redis://", "store must be a redis:// or rediss:// URL with a host"),
        ("redis://:pw@h:99999/0", "store has an invalid port: 'redis://:***@h:99999/0'"),
        ("redis://u:pw@h/zero", "database number as its path (/0): 'redis://u:***@h/zero'"),
        ("rediss://h:1/0?ssl=no", "store must not have a query or fragment"),
    ],
)
def test_a_store_that_is_not_a_redis_url_is_refused_without_its_password(
    store: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(state(f'store = "{store}"'))
    assert message in str(caught.value)
    assert str(caught.value).endswith("- at `$.state.store`")
    assert ":pw@" not in str(caught.value)


def test_a_store_is_rendered_without_its_password() -> None:
    config = parse_config(state('store = "rediss://fleet:pa55@redis.internal:6380/2"'))
    assert config.state.store == "rediss://fleet:pa55@redis.internal:6380/2"
    rendered = render_config(config, {})
    assert '"store": "rediss://fleet:***@redis.internal:6380/2"' in rendered
    assert "pa55" not in rendered
    plain = parse_config(state('store = "redis://127.0.0.1"'))
    assert '"store": "redis://127.0.0.1"' in render_config(plain, {})


@pytest.mark.parametrize("seconds", [0.01, 61.0])
def test_the_sync_interval_is_bounded(seconds: float) -> None:
    with pytest.raises(ConfigError, match=r"\$\.state\.sync_interval_seconds"):
        parse_config(state(f"sync_interval_seconds = {seconds}"))


def test_rows_survive_the_store_encoding_exactly() -> None:
    rows = {GPT: SpendRow(0.1 + 0.2, 3, 0.1), ("a\x1fb", 'c"d', "é"): SpendRow(7.0, 1, 0.0)}
    assert decode_rows(encode_rows(rows)) == rows


def test_rate_counts_leave_out_this_process() -> None:
    raw = {
        encode_rate_field("me", "team", "requests"): b"5",
        encode_rate_field("other", "team", "requests"): b"3",
        encode_rate_field("third", "team", "requests"): b"4",
        encode_rate_field("other", "team", "tokens"): b"900",
    }
    assert others_rate_counts(7, raw, "me") == {
        (7, "team", "requests"): 7,
        (7, "team", "tokens"): 900,
    }
    assert (window_of(119.9), window_of(120.0)) == (1, 2)


def test_rate_share_counts_own_windows_and_forgets_old_ones() -> None:
    share = RateShare()
    share.record({("team", "requests"): 2}, 10)
    share.record({("team", "requests"): 1, ("team", "tokens"): 50}, 10)
    share.record({("team", "requests"): 4}, 11)
    assert share.counts(11) == {
        (10, "team", "requests"): 3,
        (10, "team", "tokens"): 50,
        (11, "team", "requests"): 4,
    }
    assert share.counts(12) == {(11, "team", "requests"): 4}


def test_rate_share_absorbs_only_what_is_new() -> None:
    share = RateShare()
    assert share.absorb({(10, "team", "requests"): 3}, 10, catch_up=False) == {
        ("team", "requests"): 3
    }
    news = share.absorb(
        {(10, "team", "requests"): 5, (11, "team", "requests"): 2}, 11, catch_up=False
    )
    assert news == {("team", "requests"): 4}
    # A window the store lost and that climbs back is not counted twice.
    assert share.absorb({(11, "team", "requests"): 1}, 11, catch_up=False) == {}
    assert share.absorb({(11, "team", "requests"): 3}, 11, catch_up=False) == {
        ("team", "requests"): 1
    }


def test_a_catch_up_takes_only_the_current_windows_news() -> None:
    share = RateShare()
    news = share.absorb(
        {(10, "team", "requests"): 30, (11, "team", "requests"): 6}, 11, catch_up=True
    )
    assert news == {("team", "requests"): 6}
    # The previous window is now seen: it is not taken later either.
    assert share.absorb({(10, "team", "requests"): 30}, 11, catch_up=False) == {}


def test_the_limiter_counts_consumption_only_when_sharing() -> None:
    key = KeyConfig(name="team", key_env="K", requests_per_minute=60, tokens_per_minute=1000)
    limiter = RateLimiter()
    limiter.admit("team", key, 0.0)
    assert limiter.take_used() == {}
    limiter.sharing = True
    limiter.admit("team", key, 0.0)
    limiter.admit("team", key, 0.0)
    limiter.charge_tokens("team", key, 120, 0.0)
    assert limiter.take_used() == {("team", "requests"): 2, ("team", "tokens"): 120}
    assert limiter.take_used() == {}


def test_the_fleets_consumption_empties_this_gateways_buckets() -> None:
    key = KeyConfig(name="team", key_env="K", requests_per_minute=60)
    limiter = RateLimiter()
    limiter.absorb("team", key, "requests", 59, 0.0, catch_up=False)
    assert limiter.headers("team", key, 0.0)["x-ratelimit-remaining-requests"] == "1"
    limiter.admit("team", key, 0.0)
    # Steady-state news may take the bucket below zero, at most one minute's allowance.
    limiter.absorb("team", key, "requests", 500, 0.0, catch_up=False)
    assert limiter.headers("team", key, 0.0)["x-ratelimit-reset-requests"] == "2m0s"
    # A catch-up only empties a bucket (here one that has refilled), never more.
    limiter.absorb("team", key, "requests", 100, 120.0, catch_up=True)
    assert limiter.headers("team", key, 120.0)["x-ratelimit-remaining-requests"] == "0"
    assert limiter.headers("team", key, 120.0)["x-ratelimit-reset-requests"] == "1m0s"
    # A limit the key does not have takes nothing.
    limiter.absorb("team", key, "tokens", 100, 120.0, catch_up=False)
    assert "x-ratelimit-limit-tokens" not in limiter.headers("team", key, 120.0)


def test_the_outbox_owes_what_the_store_has_not_acknowledged() -> None:
    outbox = Outbox()
    outbox.committed("2026-01", [])
    assert (outbox.owed(), outbox.holds("2026-01")) == ({}, False)
    outbox.committed("2025-12", [(GPT, SpendRow(1.0, 1, 0.0))])
    outbox.committed("2026-01", [(GPT, SpendRow(2.0, 2, 0.0))])
    owed = outbox.owed()
    assert set(owed) == {"2025-12", "2026-01"}
    outbox.acknowledge(owed, "2026-01")
    assert outbox.owed() == {}
    # December is done with; January stays held.
    assert (outbox.holds("2025-12"), outbox.holds("2026-01")) == (False, True)
    outbox.committed("2026-01", [(GPT, SpendRow(2.0, 2, 0.0))])
    assert outbox.owed() == {}
    outbox.committed("2026-01", [(GPT, SpendRow(3.0, 3, 0.0))])
    assert outbox.owed() == {"2026-01": {GPT: SpendRow(3.0, 3, 0.0)}}
    outbox.acknowledge(outbox.owed(), "2026-01")
    # After a failure (or a store that lost it), everything held is owed again.
    outbox.forget_acknowledged()
    assert outbox.owed() == {"2026-01": {GPT: SpendRow(3.0, 3, 0.0)}}


def test_a_refresh_makes_the_ledgers_rows_plus_what_is_pending_the_months() -> None:
    tally = SpendTally(lambda: JAN)
    tally.charge(GPT, 1.0, estimated=False)
    pending = tally.take_pending()
    tally.charge(GPT, 2.0, estimated=True)  # charged while the write was under way
    # The file also holds another instance's spend.
    committed = [(GPT, SpendRow(1.0, 1, 0.0)), (MINI, SpendRow(5.0, 1, 0.0))]
    tally.refresh("2026-01", committed)
    assert tally.rows == {GPT: SpendRow(3.0, 2, 2.0), MINI: SpendRow(5.0, 1, 0.0)}
    assert (tally.total_usd, tally.by_key) == (8.0, {"team": 3.0, "other": 5.0})
    assert pending == {("2026-01", *GPT): SpendRow(1.0, 1, 0.0)}
    tally.refresh("2025-12", [(GPT, SpendRow(100.0, 1, 0.0))])
    assert tally.total_usd == 8.0


def test_budgets_count_the_other_ledgers_of_the_fleet() -> None:
    now = [JAN]
    book = SpendBook(BudgetConfig(monthly_limit_usd=10.0), lambda: now[0])
    book.charge("team", "cloud", "gpt", 4.0, estimated=False)
    book.tally.set_others("2026-01", {GPT: SpendRow(3.0, 1, 0.0), MINI: SpendRow(3.5, 2, 1.0)})
    assert (book.budget().spent_usd, book.budget().level) == (10.5, BudgetLevel.HARD)
    assert book.key_budget("team", 8.0).spent_usd == 7.0
    book.shared_store_up = False
    stats = book.statistics()
    assert (stats.total_usd, stats.own_usd, stats.requests, stats.estimated_usd) == (
        10.5,
        4.0,
        4,
        1.0,
    )
    assert (stats.by_key, stats.store_up, stats.stores) == (
        {"team": 7.0, "other": 3.5},
        False,
        {"ledger": False, "redis": False},
    )
    # Another month's rows are not this month's; a new month starts without the others.
    book.tally.set_others("2025-12", {GPT: SpendRow(50.0, 1, 0.0)})
    assert book.budget().spent_usd == 10.5
    now[0] = dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp()
    assert (book.budget().spent_usd, book.tally.others) == (0.0, {})


def test_a_ledger_keeps_its_id_and_reads_back_what_it_wrote(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path)
    ledger_id = ledger.id
    held = ledger.add_and_read({("2026-01", *GPT): SpendRow(1.0, 1, 0.0)}, ("2025-12", "2026-01"))
    assert held == {"2025-12": [], "2026-01": [(GPT, SpendRow(1.0, 1, 0.0))]}
    ledger.close()
    assert len(ledger_id) == 32
    assert Ledger.open(tmp_path).id == ledger_id
    # A schema-1 file (no id yet) gets one when opened, and keeps its rows.
    old = tmp_path / "old"
    old.mkdir()
    db = sqlite3.connect(old / FILE_NAME)
    db.execute(
        "CREATE TABLE spend (month TEXT, key TEXT, backend TEXT, model TEXT, usd REAL, "
        "requests INTEGER, estimated_usd REAL, PRIMARY KEY (month, key, backend, model))"
    )
    db.execute("INSERT INTO spend VALUES ('2026-01', 'team', 'cloud', 'gpt', 2.0, 1, 0.0)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    upgraded = Ledger.open(old)
    assert len(upgraded.id) == 32
    assert upgraded.month("2026-01") == [(GPT, SpendRow(2.0, 1, 0.0))]


def test_status_shows_the_fleet_and_an_unreachable_store() -> None:
    spend = {
        "enabled": True,
        "month": "2026-01",
        "total_usd": 10.0,
        "estimated_usd": 0.0,
        "requests": 3,
        "by_key": {},
        "by_backend": {},
        "budget": {"limit_usd": None},
        "own_usd": 4.0,
        "store_up": True,
        "stores": {"ledger": True, "redis": True},
    }
    assert status_lines(spend)[-1] == "  fleet: this gateway's ledger $4.00 of the total"
    spend["stores"] = {"ledger": True, "redis": False}
    assert status_lines(spend)[-1] == (
        "  warning: the shared store is unreachable: this gateway counts on its own (see the log)"
    )
