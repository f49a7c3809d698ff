"""Budgets that hold under concurrency (docs/spend.md#reservations, docs/keys.md#keys): each
attempt to a priced agent reserves its worst case before it is sent, so concurrent requests are
admitted only while the budget has room, and the budget is checked again before each attempt.
"""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio
import trio.testing

from tests.component.capped_key import (
    COST_USD,
    Burst,
    MakeGateway,
    capped_gateway,
    input_tokens,
    reserved,
)
from tests.component.client import CHAT, PATH
from tests.component.fake_upstream import completion, raw_response


@pytest.mark.parametrize(("body", "admitted"), [(CHAT, 1), ({**CHAT, "max_tokens": 500}, 4)])
async def test_concurrent_requests_are_admitted_only_while_the_keys_budget_has_room(
    make_gateway: MakeGateway, nursery: trio.Nursery, body: dict[str, object], admitted: int
) -> None:
    """12 requests at once from a key with $2: CHAT may cost $4.10 (4096 output tokens by
    default), so one is admitted; with max_tokens 500 each may cost $0.501, so four are (the
    fourth takes the key to $2.004: one request over, at most)."""
    gateway = capped_gateway(make_gateway, "reject")
    burst = Burst(gateway, body, held_host="cloud.test")
    await burst.start(nursery)
    assert len(burst.held) == admitted
    assert len(burst.answers) == 12 - admitted
    for response in burst.answers:
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"  # reservations end with their requests
        assert "x-should-retry" not in response.headers
        error = (await response.get_json())["error"]
        assert error["code"] == "budget_exceeded"
        assert "key 'capped'" in error["message"]
        assert "reserved by requests in flight" in error["message"]
    worst = (input_tokens(body) + (500 if "max_tokens" in body else 4096)) * 1000 / 1e6
    stats = await gateway.app.test_client().get(
        "/v1/stats", headers={"authorization": "Bearer ops"}
    )
    assert (await stats.get_json())["spend"]["reserved_usd"] == pytest.approx(admitted * worst)
    await burst.finish()
    assert sorted(r.status_code for r in burst.answers) == [200] * admitted + [429] * (
        12 - admitted
    )
    assert reserved(gateway) == (0, 0.0)
    assert gateway.wiring.spend.statistics().by_key == {
        "capped": pytest.approx(admitted * COST_USD)
    }


@pytest.mark.parametrize("model", ["m", "gpt"])
async def test_with_local_only_the_rest_go_local_or_get_budget_exhausted(
    make_gateway: MakeGateway, nursery: trio.Nursery, model: str
) -> None:
    gateway = capped_gateway(make_gateway, "local_only")
    burst = Burst(gateway, {**CHAT, "model": model}, held_host="cloud.test")
    await burst.start(nursery)
    assert len(burst.held) == 1
    for response in burst.answers:
        if model == "m":  # the local backend serves it too, for nothing
            assert (response.status_code, response.headers["x-nexus-backend"]) == (200, "local")
        else:  # only the cloud serves it
            assert response.status_code == 503
            assert response.headers["x-nexus-rejection-reasons"] == "budget_exhausted"
    assert len(burst.answers) == 11
    await burst.finish()
    assert reserved(gateway) == (0, 0.0)


GATED = """
[health_check]
enabled = false
[routing]
strategy = "priority_only"
[budget]
monthly_limit_usd = 2
hard_limit_action = "{action}"
[[backends]]
name = "flaky"
url = "http://flaky.test"
type = "generic"
priority = 10
models = ["m"]
[[backends]]
name = "cloud"
url = "http://cloud.test"
type = "openai"
priority = 20
models = ["m", "gpt"]
[[backends]]
name = "local"
url = "http://local.test"
type = "generic"
priority = 90
models = ["m"]
[[pricing]]
backend = "cloud"
input_usd_per_million = 1000
output_usd_per_million = 1000
"""


@pytest.mark.parametrize("action", ["local_only", "reject"])
async def test_the_budget_is_checked_again_right_before_each_attempt(
    make_gateway: MakeGateway, nursery: trio.Nursery, action: str
) -> None:
    """A request routed while the budget had room retries onto the cloud after another request
    reserved it: the retry is not admitted there."""
    gateway = make_gateway(GATED.replace("{action}", action))
    at_flaky, flaky_fails, at_cloud, cloud_answers = (trio.Event() for _ in range(4))

    async def flaky(request: httpx.Request, data: bytes) -> httpx.Response:
        at_flaky.set()
        await flaky_fails.wait()
        return raw_response(500, b'{"error": {"message": "boom"}}')

    async def cloud(request: httpx.Request, data: bytes) -> httpx.Response:
        if msgspec.json.decode(data)["model"] == "gpt":
            at_cloud.set()
            await cloud_answers.wait()
        return completion()

    async def local(request: httpx.Request, data: bytes) -> httpx.Response:
        return completion()

    handlers = gateway.upstream.handlers
    handlers.update({"flaky.test": flaky, "cloud.test": cloud, "local.test": local})
    answers: dict[str, httpx.Response] = {}
    answered = {"m": trio.Event(), "gpt": trio.Event()}

    async def ask(model: str) -> None:
        answers[model] = await gateway.post(PATH, {**CHAT, "model": model})
        answered[model].set()

    with trio.fail_after(10):
        nursery.start_soon(ask, "m")
        await at_flaky.wait()  # routed with nothing reserved: the cloud is allowed
        nursery.start_soon(ask, "gpt")
        await at_cloud.wait()  # $4.10 reserved against the $2 budget
        flaky_fails.set()
        await answered["m"].wait()
        retried = answers["m"]
        if action == "local_only":
            assert (retried.status_code, retried.headers["x-nexus-backend"]) == (200, "local")
        else:
            assert retried.status_code == 429
            assert (await retried.get_json())["error"]["code"] == "budget_exceeded"
        cloud_answers.set()
        await answered["gpt"].wait()
    assert answers["gpt"].status_code == 200
    assert [r.url.host for r, _ in gateway.upstream.requests].count("cloud.test") == 1
    assert reserved(gateway) == (0, 0.0)
