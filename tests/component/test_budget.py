"""The global budget on the request path and the ledger service (docs/spend.md#budgets,
docs/spend.md#ledger): each hard-limit action, the soft limit's route reason, rollover on a fake
clock, flushing every second and at the end."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from nexus_trio.config import BudgetConfig
from nexus_trio.spend import Ledger, LedgerService, SpendBook, SpendRow
from tests.component.client import CHAT
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway

CONFIG = """
[health_check]
enabled = false
[budget]
monthly_limit_usd = 10
hard_limit_action = "{action}"
[[backends]]
name = "cloud"
url = "http://cloud.test"
type = "openai"
models = ["m", "gpt"]
[[backends]]
name = "local"
url = "http://local.test"
type = "generic"
priority = 90
models = ["m"]
[[pricing]]
backend = "cloud"
input_usd_per_million = 1.0
output_usd_per_million = 1.0
"""
JAN_31 = dt.datetime(2026, 1, 31, 23, 0, tzinfo=dt.UTC).timestamp()
FEB_1 = dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = JAN_31

    def __call__(self) -> float:
        return self.now


def budgeted(make_gateway: Callable[..., Gateway], action: str, clock: Clock) -> Gateway:
    gateway = make_gateway(CONFIG.replace("{action}", action), wall_clock=clock)

    async def answer(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()

    gateway.upstream.handlers["cloud.test"] = answer
    gateway.upstream.handlers["local.test"] = answer
    return gateway


def spend(gateway: Gateway, usd: float) -> None:
    gateway.wiring.spend.charge("default", "cloud", "m", usd, estimated=False)


@pytest.mark.parametrize("action", ["local_only", "reject"])
async def test_within_budget_cloud_serves_and_is_charged(
    make_gateway: Callable[..., Gateway], action: str
) -> None:
    gateway = budgeted(make_gateway, action, Clock())
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert (response.headers["x-nexus-backend"], response.headers["x-nexus-route-reason"]) == (
        "cloud",
        "best_score",
    )
    row = gateway.wiring.spend.tally.rows[("default", "cloud", "m")]
    assert (row.usd, row.requests) == (pytest.approx(5e-6), 1)  # 3 + 2 tokens at $1/M


async def test_soft_limit_routes_local_first_with_its_reason(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = budgeted(make_gateway, "local_only", Clock())
    spend(gateway, 8.0)
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert (response.headers["x-nexus-backend"], response.headers["x-nexus-route-reason"]) == (
        "local",
        "budget_soft_limit",
    )
    # A model only the cloud serves still goes there.
    only_cloud = await gateway.post("/v1/chat/completions", {**CHAT, "model": "gpt"})
    assert only_cloud.headers["x-nexus-backend"] == "cloud"


async def test_hard_limit_local_only_rejects_cloud_and_local_keeps_serving(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = budgeted(make_gateway, "local_only", Clock())
    spend(gateway, 10.0)
    local = await gateway.post("/v1/chat/completions", CHAT)
    assert (local.status_code, local.headers["x-nexus-backend"]) == (200, "local")
    cloud = await gateway.post("/v1/chat/completions", {**CHAT, "model": "gpt"})
    assert cloud.status_code == 503
    assert cloud.headers["x-nexus-rejection-reasons"] == "budget_exhausted"
    assert cloud.headers["x-should-retry"] == "false"
    error = (await cloud.get_json())["error"]
    assert (error["code"], error["rejections"][0]["reason"]) == (
        "no_available_backend",
        "budget_exhausted",
    )


async def test_hard_limit_reject_answers_429_budget_exceeded_until_the_month_ends(
    make_gateway: Callable[..., Gateway],
) -> None:
    clock = Clock()
    gateway = budgeted(make_gateway, "reject", clock)
    spend(gateway, 10.0)
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 429
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["retry-after"] == "3600"  # 23:00 on the 31st: one hour left
    error = (await response.get_json())["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
    assert gateway.upstream.requests == []
    clock.now = FEB_1
    rolled = await gateway.post("/v1/chat/completions", CHAT)
    assert (rolled.status_code, rolled.headers["x-nexus-backend"]) == (200, "cloud")
    assert gateway.wiring.spend.tally.month == "2026-02"


async def test_ledger_service_loads_the_month_flushes_each_second_and_at_the_end(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # The ledger writes in a worker thread, during which every task looks blocked: let virtual
    # time jump only after half a second of real idleness, never in the middle of a write.
    autojump_clock.autojump_threshold = 0.5
    clock = Clock()
    seeded = Ledger.open(tmp_path)
    seeded.add({("2026-01", "default", "cloud", "m"): SpendRow(3.0, 3, 0.0)})
    seeded.close()
    book = SpendBook(BudgetConfig(), clock)
    service = LedgerService(book, tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        assert book.tally.total_usd == 3.0
        book.charge("default", "cloud", "m", 1.0, estimated=False)
        await trio.sleep(1.01)
        assert book.tally.pending == {}
        assert _month(tmp_path) == [(("default", "cloud", "m"), SpendRow(4.0, 4, 0.0))]
        book.charge("default", "cloud", "m", 0.5, estimated=True)
        nursery.cancel_scope.cancel()
    assert _month(tmp_path) == [(("default", "cloud", "m"), SpendRow(4.5, 5, 0.5))]


def _month(directory: Path) -> list[tuple[tuple[str, str, str], SpendRow]]:
    ledger = Ledger.open_read_only(directory)
    try:
        return ledger.month("2026-01")
    finally:
        ledger.close()


async def test_stats_and_metrics_show_the_months_spend_and_budget(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = budgeted(make_gateway, "local_only", Clock())
    spend(gateway, 8.0)
    gateway.wiring.spend.charge("default", "cloud", "gpt", 0.5, estimated=True)
    response = await gateway.app.test_client().get("/v1/stats")
    document = (await response.get_json())["spend"]
    assert document == {
        "enabled": True,
        "month": "2026-01",
        "total_usd": 8.5,
        "estimated_usd": 0.5,
        "requests": 2,
        "by_key": {"default": 8.5},
        "by_backend": {"cloud": 8.5},
        "by_model": {"gpt": 0.5, "m": 8.0},
        "budget": {
            "limit_usd": 10.0,
            "soft_limit_usd": 8.0,
            "spent_usd": 8.5,
            "remaining_usd": 1.5,
            "state": "soft",
            "hard_limit_action": "local_only",
        },
        "key_budgets": {},
        "own_usd": 8.5,
        "reserved_usd": 0.0,
        # No ledger service runs in-process: nothing is being written.
        "store_up": False,
        "stores": {"ledger": False},
    }
    registry = gateway.wiring.metrics.registry
    assert registry.get_sample_value("nexus_budget_spent_usd") == 8.5
    assert registry.get_sample_value("nexus_budget_limit_usd") == 10.0
    states = {
        state: registry.get_sample_value("nexus_budget_state", {"state": state})
        for state in ("ok", "soft", "hard")
    }
    assert states == {"ok": 0.0, "soft": 1.0, "hard": 0.0}
    assert registry.get_sample_value("nexus_state_store_up", {"store": "ledger"}) == 0.0


async def test_without_pricing_or_budget_no_spend_is_kept_or_exported(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway()
    assert gateway.wiring.ledger_service() is None
    document = (await (await gateway.app.test_client().get("/v1/stats")).get_json())["spend"]
    assert (document["enabled"], document["total_usd"], document["budget"]["limit_usd"]) == (
        False,
        0.0,
        None,
    )
    assert gateway.wiring.metrics.registry.get_sample_value("nexus_state_store_up") is None
