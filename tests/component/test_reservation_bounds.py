"""What one tenant can hold of a shared budget (docs/spend.md#reservations, docs/keys.md#keys,
docs/keys.md#roles): a reservation's output is capped, choices are bounded, a key's budget
bounds what its requests in flight hold of the global one, and a tenant is not told the
global budget's amounts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.component.conftest import CHAT, Gateway

MakeGateway = Callable[..., Gateway]

PATH = "/v1/chat/completions"
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
[[pricing]]
backend = "cloud"
input_usd_per_million = 0
output_usd_per_million = 10
[[keys]]
name = "greedy"
key_env = "GREEDY_KEY"
[[keys]]
name = "small"
key_env = "SMALL_KEY"
monthly_budget_usd = 1
[[keys]]
name = "other"
key_env = "OTHER_KEY"
[[keys]]
name = "ops"
key_env = "OPS_KEY"
admin = true
"""
ENV = {"GREEDY_KEY": "greedy", "SMALL_KEY": "small", "OTHER_KEY": "other", "OPS_KEY": "ops"}
OUTPUT_USD = 10 / 1e6


def as_key(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {name}"}


def bounded_gateway(make_gateway: MakeGateway, budget: str = "") -> Gateway:
    return make_gateway(CONFIG.replace("{budget}", budget), env=ENV)


@pytest.mark.parametrize("how", ["spent", "reserved"])
async def test_a_tenant_is_not_told_the_global_budgets_amounts(
    make_gateway: MakeGateway, how: str
) -> None:
    gateway = bounded_gateway(make_gateway)
    book = gateway.services.spend
    if how == "spent":
        book.charge("ops", "cloud", "m", 100.0, estimated=False)
    else:
        book.reserve("ops", 100.0)
    tenant = await gateway.post(PATH, CHAT, **as_key("other"))
    admin = await gateway.post(PATH, CHAT, **as_key("ops"))
    assert (tenant.status_code, admin.status_code) == (429, 429)
    told = (await tenant.get_json())["error"]["message"]
    assert told.startswith("The monthly budget for 20")
    assert "100" not in told
    assert "USD" not in told
    assert "(100 USD for 20" in (await admin.get_json())["error"]["message"]
    assert gateway.upstream.requests == []
