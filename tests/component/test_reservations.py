"""Budgets that hold under concurrency (docs/spend.md#reservations, docs/keys.md#keys): each
attempt to a priced agent reserves its worst case before it is sent, and the reservation is
released exactly once, however the request ends."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import msgspec
import pytest
import trio
import trio.testing

from tests.component.client import CHAT, PATH, ASGICall
from tests.component.conftest import Gateway
from tests.component.fake_upstream import (
    ChunkStream,
    chunk,
    completion,
    raw_response,
    sse,
    stream_response,
)

MakeGateway = Callable[..., Gateway]

CONFIG = """
[health_check]
enabled = false
[routing]
strategy = "priority_only"
[budget]
hard_limit_action = "{action}"
[[backends]]
name = "cloud"
url = "http://cloud.test"
type = "openai"
priority = 10
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
[[keys]]
name = "capped"
key_env = "CAPPED_KEY"
monthly_budget_usd = 2
[[keys]]
name = "ops"
key_env = "OPS_KEY"
admin = true
"""
ENV = {"CAPPED_KEY": "capped", "OPS_KEY": "ops"}
CAPPED = {"authorization": "Bearer capped"}


def input_tokens(body: dict[str, object]) -> int:
    """The input a body reserves (docs/spend.md#estimates): its bytes / 4."""
    return len(msgspec.json.encode(body)) // 4


#: CHAT's worst case on the cloud: its input + 4096 output tokens, at $1000/M.
WORST_USD = (input_tokens(CHAT) + 4096) * 1000 / 1e6
#: What completion() reports: 3 + 2 tokens.
COST_USD = 5 * 1000 / 1e6


class Count:
    """Counts events; ``reached`` is set at ``target``."""

    def __init__(self, target: int) -> None:
        self.value = 0
        self.target = target
        self.reached = trio.Event()

    def add(self) -> None:
        self.value += 1
        if self.value >= self.target:
            self.reached.set()


def reserved(gateway: Gateway) -> tuple[int, float]:
    """The reservations in flight: how many, and their USD."""
    book = gateway.services.spend.reservations
    return book.count, book.total_usd


class Burst:
    """Twelve requests at once; the upstream at ``held_host`` holds each it gets until
    :attr:`release` is set, the other answers at once."""

    def __init__(self, gateway: Gateway, body: dict[str, object], held_host: str) -> None:
        self.gateway = gateway
        self.body = body
        self.release = trio.Event()
        self.held: list[bytes] = []
        self.answers: list[httpx.Response] = []
        #: Requests held upstream or answered: all 12 once everything is in place.
        self.settled = Count(12)
        self.done = Count(12)
        for host in ("cloud.test", "local.test"):
            gateway.upstream.handlers[host] = self._hold if host == held_host else self._answer

    async def _hold(self, request: httpx.Request, data: bytes) -> httpx.Response:
        self.held.append(data)
        self.settled.add()
        await self.release.wait()
        return completion()

    async def _answer(self, request: httpx.Request, data: bytes) -> httpx.Response:
        return completion()

    async def _one(self) -> None:
        self.answers.append(await self.gateway.post(PATH, self.body, **CAPPED))
        self.settled.add()
        self.done.add()

    async def start(self, nursery: trio.Nursery) -> None:
        """Send all twelve; return once each is answered or held upstream."""
        for _ in range(12):
            nursery.start_soon(self._one)
        with trio.fail_after(10):
            await self.settled.reached.wait()

    async def finish(self) -> None:
        """Let the held requests answer; return once all twelve are answered."""
        self.release.set()
        with trio.fail_after(10):
            await self.done.reached.wait()


def capped_gateway(make_gateway: MakeGateway, action: str) -> Gateway:
    return make_gateway(CONFIG.replace("{action}", action), env=ENV)


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
    assert gateway.services.spend.statistics().by_key == {
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


RETRY = """
[health_check]
enabled = false
[routing]
strategy = "priority_only"
[[backends]]
name = "c1"
url = "http://c1.test"
type = "openai"
priority = 10
models = ["m"]
[[backends]]
name = "c2"
url = "http://c2.test"
type = "openai"
priority = 20
models = ["m"]
[[pricing]]
backend = "c1"
input_usd_per_million = 1000
output_usd_per_million = 1000
[[pricing]]
backend = "c2"
input_usd_per_million = 2000
output_usd_per_million = 2000
"""


async def test_a_failed_attempt_releases_and_the_retry_reserves_at_its_own_price(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(RETRY)
    seen: dict[str, tuple[int, float]] = {}

    async def fail(request: httpx.Request, data: bytes) -> httpx.Response:
        seen["c1"] = reserved(gateway)
        return raw_response(500, b'{"error": {"message": "boom"}}')

    async def answer(request: httpx.Request, data: bytes) -> httpx.Response:
        seen["c2"] = reserved(gateway)
        return completion()

    gateway.upstream.handlers["c1.test"] = fail
    gateway.upstream.handlers["c2.test"] = answer
    response = await gateway.post(PATH, CHAT)
    assert (response.status_code, response.headers["x-nexus-backend"]) == (200, "c2")
    assert seen["c1"] == (1, pytest.approx(WORST_USD))
    assert seen["c2"] == (1, pytest.approx(2 * WORST_USD))
    assert reserved(gateway) == (0, 0.0)
    assert gateway.services.spend.statistics().total_usd == pytest.approx(2 * COST_USD)


def charged_estimate(gateway: Gateway, body: dict[str, object]) -> None:
    """The request was charged its input estimate alone, as estimated (docs/spend.md#pricing)."""
    usd = input_tokens(body) * 1000 / 1e6
    stats = gateway.services.spend.statistics()
    assert (stats.by_key, stats.estimated_usd) == ({"capped": pytest.approx(usd)}, stats.total_usd)
    sample = gateway.services.metrics.registry.get_sample_value(
        "nexus_spend_usd_total",
        {"key": "capped", "backend": "cloud", "model": "m", "estimated": "true"},
    )
    assert sample == pytest.approx(usd)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_gone_after_the_attempt_was_sent_is_charged_its_input(
    make_gateway: MakeGateway, stream: bool
) -> None:
    """The provider has the request (a stream: before its first event): it bills its input at
    least. The reservation is released in the same step."""
    gateway = capped_gateway(make_gateway, "reject")
    arrived = trio.Event()

    async def hang(request: httpx.Request, data: bytes) -> httpx.Response:
        arrived.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    gateway.upstream.handlers["cloud.test"] = hang
    body = {**CHAT, "stream": stream}
    call = ASGICall(
        gateway.app, PATH, msgspec.json.encode(body), headers=[(b"authorization", b"Bearer capped")]
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(call.run)
        with trio.fail_after(2):
            await arrived.wait()
        assert reserved(gateway) == (1, pytest.approx((input_tokens(body) + 4096) * 1000 / 1e6))
        call.gone.set()
        with trio.fail_after(2):
            await call.finished.wait()
    assert reserved(gateway) == (0, 0.0)
    charged_estimate(gateway, body)


async def test_an_attempt_cut_by_the_request_deadline_is_charged_its_input_a_failed_one_not(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    """Providers bill a request they were sent, answered or not; not an error status or a
    connection that failed."""
    gateway = make_gateway(
        "[server]\nrequest_timeout_seconds = 5\n" + CONFIG.replace("{action}", "reject"), env=ENV
    )

    failures = ["status", "connect"]

    async def cloud(request: httpx.Request, data: bytes) -> httpx.Response:
        failure = failures.pop(0) if failures else None
        if failure == "status":
            return raw_response(500, b'{"error": {"message": "boom"}}')
        if failure == "connect":
            raise httpx.ConnectError("refused", request=request)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    gateway.upstream.handlers["cloud.test"] = cloud
    failed = await gateway.post(PATH, {**CHAT, "model": "gpt"}, **CAPPED)
    refused = await gateway.post(PATH, {**CHAT, "model": "gpt"}, **CAPPED)
    assert (failed.status_code, refused.status_code) == (500, 502)
    assert gateway.services.spend.statistics().total_usd == 0.0
    response = await gateway.post(PATH, CHAT, **CAPPED)
    assert response.status_code == 504
    assert reserved(gateway) == (0, 0.0)
    charged_estimate(gateway, CHAT)


async def test_a_stream_holds_its_reservation_until_it_ends_and_is_charged(
    make_gateway: MakeGateway,
) -> None:
    gateway = capped_gateway(make_gateway, "reject")
    stream = ChunkStream([*sse(chunk("Hello")), trio.Event()])

    async def handler(request: httpx.Request, data: bytes) -> httpx.Response:
        return stream_response(stream)

    gateway.upstream.handlers["cloud.test"] = handler
    streamed = {**CHAT, "stream": True}
    body = msgspec.json.encode(streamed)
    call = ASGICall(gateway.app, PATH, body, headers=[(b"authorization", b"Bearer capped")])
    async with trio.open_nursery() as nursery:
        await nursery.start(call.run)
        with trio.fail_after(2):
            assert b"Hello" in await call.next_body()
        worst = (input_tokens(streamed) + 4096) * 1000 / 1e6
        assert reserved(gateway) == (1, pytest.approx(worst))
        call.gone.set()  # the client leaves mid-stream: what was generated is charged
        with trio.fail_after(2):
            await call.finished.wait()
    assert reserved(gateway) == (0, 0.0)
    assert gateway.services.spend.statistics().by_key["capped"] > 0


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
