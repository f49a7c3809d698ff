"""A gateway whose key ``capped`` has a $2 monthly budget, in front of a priced cloud backend
and a free local one (docs/spend.md#reservations); bursts of concurrent requests from that key,
and the reservations in flight."""

from __future__ import annotations

import httpx
import msgspec
import trio

from tests.component.client import CHAT, PATH
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway, MakeGateway

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
    book = gateway.wiring.spend.reservations
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
