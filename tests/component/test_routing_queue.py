"""Capacity and the queue (docs/routing.md#queue-and-overload): waiting for a slot, priorities
and who may use them, a full queue, waiting too long, and clients that leave while queued.
Time is virtual (``autojump_clock``) and asserted exactly.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from nexus_trio.api.admission_queue import AdmissionQueue
from tests.component.client import CHAT, PATH, ASGICall
from tests.component.configs import config_toml, fake_backend
from tests.component.fake_upstream import gated
from tests.component.in_process import Gateway, MakeGateway
from tests.component.readings import attempts, error_of, metrics_text, sample

# --- capacity and the queue -------------------------------------------------------------------

ONE_SLOT = "max_concurrent_requests = 1"


class Client:
    """Requests sent from background tasks; remembers each answer and when it came."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.responses: dict[str, Any] = {}
        self.finished_at: dict[str, float] = {}

    async def post(self, label: str, **headers: str) -> None:
        body = {**CHAT, "messages": [{"role": "user", "content": label}]}
        response = await self.gateway.post(PATH, body, **headers)
        await response.get_data()
        self.responses[label] = response
        self.finished_at[label] = trio.current_time()


def labels_sent(gateway: Gateway) -> list[str]:
    return [
        msgspec.json.decode(body)["messages"][0]["content"] for body in gateway.upstream.bodies()
    ]


async def test_at_capacity_request_waits_and_is_served_the_moment_a_slot_frees(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", extra=ONE_SLOT)))
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.post, "first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(client.post, "second")
        await trio.testing.wait_all_tasks_blocked()
        assert gateway.wiring.queue.depth == 1
        assert "\nnexus_queue_depth 1.0\n" in await metrics_text(gateway)
        assert gateway.wiring.state.in_flight.count == 2
        assert labels_sent(gateway) == ["first"]
        await trio.sleep(5)
        release.set()
    assert client.finished_at == {"first": start + 5, "second": start + 5}
    second = client.responses["second"]
    assert second.status_code == 200
    assert second.headers["x-nexus-attempts"] == "1"
    assert labels_sent(gateway) == ["first", "second"]
    assert "\nnexus_queue_depth 0.0\n" in await metrics_text(gateway)


async def test_high_priority_waiter_overtakes_a_normal_one(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", extra=ONE_SLOT)))
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    async with trio.open_nursery() as nursery:
        for label, headers in (
            ("holder", {}),
            ("normal-1", {}),
            ("normal-2", {"x-nexus-priority": "normal"}),
            ("urgent", {"x-nexus-priority": "high"}),
        ):
            nursery.start_soon(functools.partial(client.post, label, **headers))
            await trio.testing.wait_all_tasks_blocked()
        assert gateway.wiring.queue.depth == 3
        release.set()
    assert labels_sent(gateway) == ["holder", "urgent", "normal-1", "normal-2"]
    assert all(r.status_code == 200 for r in client.responses.values())


TENANT_AND_ADMIN = (
    '[server]\napi_keys_env = "ADMIN_KEYS"\n[[keys]]\nname = "tenant"\nkey_env = "TENANT_KEY"\n'
)


async def test_only_admin_keys_jump_the_queue(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    """A tenant's ``X-Nexus-Priority: high`` is ignored: it waits its turn behind other tenants'
    requests; an admin key's is honoured (docs/routing.md#queue-and-overload)."""
    gateway = make_gateway(
        config_toml(fake_backend("a", extra=ONE_SLOT), head=TENANT_AND_ADMIN),
        env={"ADMIN_KEYS": "admin-key", "TENANT_KEY": "tenant-key"},
    )
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    tenant = {"authorization": "Bearer tenant-key"}
    async with trio.open_nursery() as nursery:
        for label, headers in (
            ("holder", tenant),
            ("normal", tenant),
            ("tenant-urgent", {**tenant, "x-nexus-priority": "high"}),
            ("admin-urgent", {"authorization": "Bearer admin-key", "x-nexus-priority": "high"}),
        ):
            nursery.start_soon(functools.partial(client.post, label, **headers))
            await trio.testing.wait_all_tasks_blocked()
        assert gateway.wiring.queue.depth == 3
        release.set()
    assert labels_sent(gateway) == ["holder", "admin-urgent", "normal", "tenant-urgent"]


async def test_full_queue_answers_503_queue_full(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(fake_backend("a", extra=ONE_SLOT), head="[queue]\nmax_size = 1\n")
    )
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.post, "holder")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(client.post, "waiter")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        response = await gateway.post(PATH, CHAT)
        assert trio.current_time() == start
        assert response.status_code == 503
        assert (await error_of(response))["code"] == "queue_full"
        assert gateway.wiring.queue.depth == 1
        release.set()
    assert client.responses["waiter"].status_code == 200
    assert sample(gateway, "nexus_capacity_rejections_total", code="queue_full") == 1


@pytest.mark.parametrize(
    ("settings", "waited"),
    [
        ("[queue]\nmax_wait_seconds = 5\n", 5.0),
        ("[server]\nrequest_timeout_seconds = 3\n[queue]\nmax_wait_seconds = 30\n", 3.0),
    ],
    ids=["max-wait", "request-deadline"],
)
async def test_waiting_too_long_answers_503_queue_timeout(
    make_gateway: MakeGateway,
    autojump_clock: trio.testing.MockClock,
    settings: str,
    waited: float,
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", extra=ONE_SLOT), head=settings))
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.post, "holder")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        response = await gateway.post(PATH, CHAT)
        assert trio.current_time() - start == waited
        assert response.status_code == 503
        assert (await error_of(response))["code"] == "queue_timeout"
        assert int(response.headers["retry-after"]) >= 1
        assert gateway.wiring.queue.depth == 0
        release.set()
    assert labels_sent(gateway) == ["holder"]
    # The wait was the gateway's: visible as such, and no attempt (outcome) of the backend's
    # but the holder's own.
    assert sample(gateway, "nexus_capacity_rejections_total", code="queue_timeout") == 1
    outcomes = ("success", "failure", "cancelled", "client_error")
    recorded = [attempts(gateway, o) for o in outcomes]
    assert sum(recorded) == 1


async def test_client_gone_while_queued_leaves_the_queue_at_once(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", extra=ONE_SLOT)))
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    call = ASGICall(gateway.app, PATH, msgspec.json.encode(CHAT))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.post, "holder")
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(call.run)
        await trio.testing.wait_all_tasks_blocked()
        assert gateway.wiring.queue.depth == 1
        gone_at = trio.current_time()
        call.gone.set()
        with trio.fail_after(1):
            await call.finished.wait()
        assert trio.current_time() == gone_at
        assert gateway.wiring.queue.depth == 0
        assert gateway.wiring.state.in_flight.count == 1
        await trio.sleep(1)
        release.set()
    assert labels_sent(gateway) == ["holder"]
    assert gateway.wiring.state.totals.cancelled == 1
    assert gateway.wiring.state.in_flight.count == 0


async def test_a_wakeup_is_not_lost_when_the_woken_waiter_is_cancelled(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", extra=ONE_SLOT)))
    a = gateway.wiring.registry.get("a")
    assert a is not None
    queue = AdmissionQueue()
    first = queue.ticket("m", high_priority=False)
    second = queue.ticket("m", high_priority=False)
    first_scope = trio.CancelScope()
    served: list[str] = []

    async def wait(ticket: Any, label: str, scope: trio.CancelScope) -> None:
        with scope:
            await queue.wait_for_slot(ticket, max_size=10)
            served.append(label)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, first, "first", first_scope)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(wait, second, "second", trio.CancelScope())
        await trio.testing.wait_all_tasks_blocked()
        assert queue.depth == 2
        # The first waiter's client goes away and, in the same instant, a slot frees.
        first_scope.cancel()
        queue.slot_freed(a)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert served == ["second"]
