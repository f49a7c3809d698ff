"""What one tenant can hold of a shared budget (docs/spend.md#reservations, docs/keys.md#keys,
docs/keys.md#roles): a reservation's output is capped, choices are bounded, a key's budget
bounds what its requests in flight hold of the global one, and a tenant is not told the
global budget's amounts."""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio

from tests.component.client import CHAT, PATH, bearer
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway, MakeGateway

#: Input is free here: a reservation is its output allowance alone, at $10 per million.
CONFIG = """
[health_check]
enabled = false
[budget]
monthly_limit_usd = 100
hard_limit_action = "reject"
{budget}
[[backends]]
name = "cloud"
url = "http://cloud.test"
type = "openai"
models = ["m", "small-ctx"]
[backends.capabilities."small-ctx"]
context_length = 8192
[[backends]]
name = "paid"
url = "http://paid.test"
type = "openai"
models = ["ids"]
[[pricing]]
backend = "cloud"
input_usd_per_million = 0
output_usd_per_million = 10
[[pricing]]
backend = "paid"
input_usd_per_million = 10
output_usd_per_million = 10
[[keys]]
name = "greedy"
key_env = "GREEDY_KEY"
[[keys]]
name = "small"
key_env = "SMALL_KEY"
monthly_budget_usd = 1
[[keys]]
name = "tiny"
key_env = "TINY_KEY"
monthly_budget_usd = 0.01
[[keys]]
name = "other"
key_env = "OTHER_KEY"
[[keys]]
name = "ops"
key_env = "OPS_KEY"
admin = true
"""
ENV = {
    "GREEDY_KEY": "greedy",
    "SMALL_KEY": "small",
    "TINY_KEY": "tiny",
    "OTHER_KEY": "other",
    "OPS_KEY": "ops",
}
OUTPUT_USD = 10 / 1e6


def bounded_gateway(make_gateway: MakeGateway, budget: str = "") -> Gateway:
    return make_gateway(CONFIG.replace("{budget}", budget), env=ENV)


class Holder:
    """The cloud upstream: holds every request asking for ``max_tokens`` until :attr:`release`
    is set, answers the others at once; records the USD reserved when each arrives.
    :attr:`settled` counts the requests held and the responses :meth:`send` got."""

    def __init__(self, gateway: Gateway, expected: int) -> None:
        self.gateway = gateway
        self.release = trio.Event()
        self.held = 0
        self.responses: list[httpx.Response] = []
        self.settled = 0
        self.all_settled = trio.Event()
        self.expected = expected
        self.reserved_at_arrival: list[float] = []
        gateway.upstream.handlers["cloud.test"] = self._handle
        gateway.upstream.handlers["paid.test"] = self._handle

    def _settle(self) -> None:
        self.settled += 1
        if self.settled >= self.expected:
            self.all_settled.set()

    async def _handle(self, request: httpx.Request, data: bytes) -> httpx.Response:
        self.reserved_at_arrival.append(self.gateway.wiring.spend.reservations.total_usd)
        if "max_tokens" in msgspec.json.decode(data):
            self.held += 1
            self._settle()
            await self.release.wait()
        return completion()

    async def send(self, body: dict[str, object], key: str, path: str = PATH) -> None:
        response = await self.gateway.post(path, body, **bearer(key))
        if not self.release.is_set():
            self.responses.append(response)
            self._settle()

    async def wait(self) -> None:
        """Until every request expected is held upstream or answered."""
        with trio.fail_after(10):
            await self.all_settled.wait()


@pytest.mark.parametrize(
    ("budget", "body", "output_tokens"),
    [
        ("", {"max_tokens": 10**15}, 131072),
        ("", {"model": "small-ctx", "max_tokens": 100_000}, 8192),
        ("", {"model": "small-ctx", "max_completion_tokens": 100_000, "n": 3}, 3 * 8192),
        ("", {"n": 128}, 131072),  # 128 x 4096 by default, capped
        ("default_reserved_output_tokens = 500\nmax_reserved_output_tokens = 1000", {}, 500),
        (
            "default_reserved_output_tokens = 500\nmax_reserved_output_tokens = 1000",
            {"max_tokens": 5000},
            1000,
        ),
    ],
)
async def test_the_output_reserved_is_capped_by_the_context_and_the_ceiling(
    make_gateway: MakeGateway, budget: str, body: dict[str, object], output_tokens: int
) -> None:
    gateway = bounded_gateway(make_gateway, budget)

    async def answer(request: httpx.Request, data: bytes) -> httpx.Response:
        held.append(gateway.wiring.spend.reservations.total_usd)
        return completion()

    held: list[float] = []
    gateway.upstream.handlers["cloud.test"] = answer
    response = await gateway.post(PATH, {**CHAT, **body}, **bearer("other"))
    assert response.status_code == 200
    assert held == [pytest.approx(output_tokens * OUTPUT_USD)]


async def test_an_unbounded_max_tokens_no_longer_blocks_other_tenants(
    make_gateway: MakeGateway, nursery: trio.Nursery
) -> None:
    """``max_tokens`` 10**15 once held the whole $100 global budget while in flight: every other
    tenant's priced request got 429. It reserves at most 131072 output tokens ($1.31) now."""
    gateway = bounded_gateway(make_gateway)
    holder = Holder(gateway, expected=1)
    nursery.start_soon(holder.send, {**CHAT, "max_tokens": 10**15}, "greedy")
    await holder.wait()
    assert holder.held == 1
    response = await gateway.post(PATH, CHAT, **bearer("other"))
    assert response.status_code == 200
    assert holder.reserved_at_arrival[-1] == pytest.approx((131072 + 4096) * OUTPUT_USD)
    holder.release.set()


async def test_a_keys_requests_in_flight_hold_at_most_its_budget_plus_one_request(
    make_gateway: MakeGateway, nursery: trio.Nursery
) -> None:
    """A tenant with a $1 budget sends 16 requests at once, each asking for 10**15 tokens of a
    model with an 8192-token context ($0.08192 each at most): 13 are admitted (12 x 0.08192 <
    $1 <= 13 x 0.08192), the rest are refused by its own budget, and another tenant is served."""
    gateway = bounded_gateway(make_gateway)
    holder = Holder(gateway, expected=16)
    for _ in range(16):
        nursery.start_soon(
            holder.send, {**CHAT, "model": "small-ctx", "max_tokens": 10**15}, "small"
        )
    await holder.wait()
    worst = 8192 * OUTPUT_USD
    assert (holder.held, len(holder.responses)) == (13, 3)
    for response in holder.responses:
        assert response.status_code == 429
        assert "key 'small'" in (await response.get_json())["error"]["message"]
    reserved = gateway.wiring.spend.reservations.total_usd
    assert reserved == pytest.approx(13 * worst)
    assert reserved <= 1 + worst
    other = await gateway.post(PATH, CHAT, **bearer("other"))
    assert other.status_code == 200
    holder.release.set()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"model": "ids", "prompt": [1] * 20000, "max_tokens": 1}),
        ("/v1/completions", {"model": "ids", "prompt": [[7] * 10000] * 2, "max_tokens": 1}),
        ("/v1/embeddings", {"model": "ids", "input": [1] * 20000, "max_tokens": 1}),
    ],
)
async def test_token_ids_reserve_their_input(
    make_gateway: MakeGateway, nursery: trio.Nursery, path: str, body: dict[str, object]
) -> None:
    """Five concurrent requests of 20,000 token ids from a key with a $0.01 budget: the ids
    reserved nothing, and all five were served (100 times the budget). Each reserves its
    20,000 input tokens ($0.20 at $10 per million) now: one is admitted, four are refused."""
    gateway = bounded_gateway(make_gateway)
    holder = Holder(gateway, expected=5)
    for _ in range(5):
        nursery.start_soon(holder.send, body, "tiny", path)
    await holder.wait()
    assert (holder.held, len(holder.responses)) == (1, 4)
    assert [r.status_code for r in holder.responses] == [429] * 4
    assert holder.reserved_at_arrival[0] >= 20000 * 10 / 1e6
    holder.release.set()


async def test_n_or_best_of_above_128_is_refused(make_gateway: MakeGateway) -> None:
    gateway = bounded_gateway(make_gateway)
    Holder(gateway, expected=1)
    for path, body, param in (
        (PATH, {**CHAT, "n": 129}, "n"),
        ("/v1/completions", {"model": "m", "prompt": "hi", "best_of": 129}, "best_of"),
        ("/v1/completions", {"model": "m", "prompt": "hi", "n": 1e300}, "n"),
    ):
        response = await gateway.post(path, body, **bearer("other"))
        assert response.status_code == 400
        error = (await response.get_json())["error"]
        assert (error["code"], error["param"]) == ("invalid_value", param)
    assert gateway.upstream.requests == []
    assert (await gateway.post(PATH, {**CHAT, "n": 128}, **bearer("other"))).status_code == 200


@pytest.mark.parametrize("how", ["spent", "reserved"])
async def test_a_tenant_is_not_told_the_global_budgets_amounts(
    make_gateway: MakeGateway, how: str
) -> None:
    gateway = bounded_gateway(make_gateway)
    book = gateway.wiring.spend
    if how == "spent":
        book.charge("ops", "cloud", "m", 100.0, estimated=False)
    else:
        book.reserve("ops", 100.0)
    tenant = await gateway.post(PATH, CHAT, **bearer("other"))
    admin = await gateway.post(PATH, CHAT, **bearer("ops"))
    assert (tenant.status_code, admin.status_code) == (429, 429)
    told = (await tenant.get_json())["error"]["message"]
    assert told.startswith("The monthly budget for 20")
    assert "100" not in told
    assert "USD" not in told
    assert "(100 USD for 20" in (await admin.get_json())["error"]["message"]
    assert gateway.upstream.requests == []
