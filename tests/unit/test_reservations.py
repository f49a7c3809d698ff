"""Reservations and the budget over settled plus reserved spend (docs/spend.md#reservations,
docs/spend.md#budgets), and the output allowance a request view declares: pure bookkeeping."""

from __future__ import annotations

import math

import msgspec
import pytest

from nexus_trio import errors
from nexus_trio.api.bodies import RouteKind, decode_view
from nexus_trio.config import BudgetConfig, parse_config
from nexus_trio.spend import BudgetLevel, Price, SpendBook, budget_state
from nexus_trio.spend.reservations import MAX_RESERVATION_USD, Reservations, worst_case_usd

JAN = 1_768_000_000.0  # 2026-01-09


def test_totals_follow_reservations_per_key_and_return_to_exactly_zero() -> None:
    book = Reservations()
    held = [book.reserve("a", 0.1), book.reserve("a", 0.2), book.reserve("b", 0.3)]
    assert book.count == 3
    assert book.total_usd == pytest.approx(0.6)
    assert (book.key_usd("a"), book.key_usd("b"), book.key_usd("c")) == (
        pytest.approx(0.3),
        pytest.approx(0.3),
        0.0,
    )
    book.release(held[1])
    assert book.key_usd("a") == pytest.approx(0.1)
    for reservation in held:
        book.release(reservation)
    # 0.1 + 0.2 + 0.3 - 0.2 - 0.1 - 0.3 is not 0 in floats; the books say exactly 0.
    assert (book.count, book.total_usd, book.key_usd("a"), book.key_usd("b")) == (0, 0.0, 0.0, 0.0)


def test_a_release_counts_once() -> None:
    book = Reservations()
    first = book.reserve("a", 1.0)
    second = book.reserve("a", 2.0)
    book.release(first)
    book.release(first)
    assert (book.count, book.total_usd, book.key_usd("a")) == (1, 2.0, 2.0)
    book.release(second)
    assert (book.count, book.total_usd) == (0, 0.0)


@pytest.mark.parametrize(
    ("usd", "held"),
    [(-1.0, 0.0), (math.inf, MAX_RESERVATION_USD), (math.nan, MAX_RESERVATION_USD)],
)
def test_an_unbounded_or_unknown_worst_case_holds_the_ceiling(usd: float, held: float) -> None:
    book = Reservations()
    reservation = book.reserve("a", usd)
    assert (reservation.usd, book.total_usd) == (held, held)
    book.release(reservation)
    assert book.total_usd == 0.0


def test_the_worst_case_is_every_input_token_uncached_and_the_whole_allowance() -> None:
    price = Price(input_usd=2e-6, output_usd=10e-6, cached_input_usd=1e-6)
    assert worst_case_usd(price, 1000, 500) == pytest.approx(0.002 + 0.005)
    assert worst_case_usd(price, -5, 0) == 0.0


def test_the_budget_is_judged_on_spent_plus_reserved() -> None:
    config = BudgetConfig(monthly_limit_usd=10.0, hard_limit_action="reject")
    assert budget_state("2026-01", 5.0, config, reserved_usd=2.9).level is BudgetLevel.OK
    soft = budget_state("2026-01", 5.0, config, reserved_usd=3.0)
    assert (soft.level, soft.remaining_usd) == (BudgetLevel.SOFT, pytest.approx(2.0))
    reserved = budget_state("2026-01", 0.0, config, reserved_usd=10.0)
    assert (reserved.level, reserved.rejects, reserved.spent) == (BudgetLevel.HARD, True, False)
    assert reserved.remaining_usd == 0.0
    assert budget_state("2026-01", 10.0, config).spent


def test_the_book_counts_reservations_in_the_global_and_the_keys_budget() -> None:
    book = SpendBook(BudgetConfig(monthly_limit_usd=10.0), lambda: JAN)
    book.charge("a", "cloud", "m", 1.0, estimated=False)
    reservation = book.reserve("a", 9.0)
    book.reserve("b", 0.5)
    assert (book.budget().level, book.budget().reserved_usd) == (BudgetLevel.HARD, 9.5)
    key = book.key_budget("a", 12.0)
    assert (key.spent_usd, key.reserved_usd, key.level) == (1.0, 9.0, BudgetLevel.SOFT)
    assert book.statistics().reserved_usd == 9.5
    # The request path's cheap check agrees: the higher of the two levels.
    assert book.level("a", 12.0) is BudgetLevel.HARD
    book.release(reservation)
    assert book.budget().level is BudgetLevel.OK
    assert book.key_budget("a", 12.0).reserved_usd == 0.0
    assert book.level("a", 12.0) is BudgetLevel.OK
    book.reserve("a", 9.0)  # the global budget at 10.5 of 10 again; the key's at 10 of 12
    assert book.level("a", 0.0) is BudgetLevel.HARD
    book.budget_config = BudgetConfig()  # no global budget: the key's alone
    assert (book.level("a", 12.0), book.level("a", 10.0)) == (BudgetLevel.SOFT, BudgetLevel.HARD)
    assert book.level("b", 12.0) is BudgetLevel.OK


@pytest.mark.parametrize(
    ("kind", "fields", "allowance"),
    [
        (RouteKind.CHAT, {}, 4096),
        (RouteKind.CHAT, {"max_tokens": 100}, 100),
        (RouteKind.CHAT, {"max_completion_tokens": 300, "max_tokens": 100}, 300),
        (RouteKind.CHAT, {"max_tokens": 100.5, "n": 3}, 303),
        (RouteKind.CHAT, {"max_tokens": 0}, 4096),
        (RouteKind.CHAT, {"max_tokens": -1, "n": None}, 4096),
        (RouteKind.COMPLETIONS, {"max_tokens": 10, "n": 2, "best_of": 5}, 50),
        (RouteKind.COMPLETIONS, {"max_tokens": 10**40}, 2**53),
        (RouteKind.EMBEDDINGS, {"max_tokens": 100}, 0),
    ],
)
def test_the_output_allowance_is_the_largest_cap_times_the_choices(
    kind: RouteKind, fields: dict[str, object], allowance: int
) -> None:
    body = {"model": "m", **fields}
    body.update(
        {
            RouteKind.CHAT: {"messages": [{"role": "user", "content": "hi"}]},
            RouteKind.COMPLETIONS: {"prompt": "hi"},
            RouteKind.EMBEDDINGS: {"input": "hi"},
        }[kind]
    )
    view = decode_view(kind, msgspec.json.encode(body))
    assert view.output_allowance(4096) == allowance


@pytest.mark.parametrize(
    ("fields", "allowance"),
    [
        ({}, 1000),
        ({"max_tokens": 10**15}, 1000),
        ({"max_tokens": 10**15, "n": 128}, 128_000),
        ({"max_tokens": 500, "best_of": 3}, 1500),
    ],
)
def test_each_choice_is_at_most_the_context_length(
    fields: dict[str, object], allowance: int
) -> None:
    body = {"model": "m", "prompt": "hi", **fields}
    view = decode_view(RouteKind.COMPLETIONS, msgspec.json.encode(body))
    assert view.output_allowance(4096, context_length=1000) == allowance


def test_the_default_output_reserved_may_not_exceed_the_ceiling() -> None:
    text = "[budget]\ndefault_reserved_output_tokens = 2000\nmax_reserved_output_tokens = 1000"
    with pytest.raises(
        errors.ConfigError, match="must not exceed max_reserved_output_tokens"
    ) as caught:
        parse_config(text)
    assert str(caught.value).endswith("`$.budget.default_reserved_output_tokens`")
    with pytest.raises(errors.ConfigError, match=r"\$\.budget\.max_reserved_output_tokens"):
        parse_config("[budget]\nmax_reserved_output_tokens = 0")


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens", "n"])
def test_a_cap_that_is_not_a_number_is_refused(field: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], field: "100"}
    with pytest.raises(errors.InvalidValue) as caught:
        decode_view(RouteKind.CHAT, msgspec.json.encode(body))
    assert caught.value.param == field
