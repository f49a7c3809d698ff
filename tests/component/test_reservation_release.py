"""Reservations released exactly once, however the request ends (docs/spend.md#reservations,
docs/spend.md#pricing): a failed attempt and its retry, a client gone after the attempt was
sent, the request deadline, and a stream that holds its reservation until it ends.
"""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio
import trio.testing

from tests.component.capped_key import (
    CAPPED,
    CONFIG,
    COST_USD,
    ENV,
    WORST_USD,
    MakeGateway,
    capped_gateway,
    input_tokens,
    reserved,
)
from tests.component.client import CHAT, PATH, ASGICall
from tests.component.fake_upstream import (
    ChunkStream,
    chunk,
    completion,
    raw_response,
    sse,
    stream_response,
)
from tests.component.in_process import Gateway

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
    assert gateway.wiring.spend.statistics().total_usd == pytest.approx(2 * COST_USD)


def charged_estimate(gateway: Gateway, body: dict[str, object]) -> None:
    """The request was charged its input estimate alone, as estimated (docs/spend.md#pricing)."""
    usd = input_tokens(body) * 1000 / 1e6
    stats = gateway.wiring.spend.statistics()
    assert (stats.by_key, stats.estimated_usd) == ({"capped": pytest.approx(usd)}, stats.total_usd)
    sample = gateway.wiring.metrics.registry.get_sample_value(
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
    assert gateway.wiring.spend.statistics().total_usd == 0.0
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
    assert gateway.wiring.spend.statistics().by_key["capped"] > 0
