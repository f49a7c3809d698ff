"""The demo's traffic generator: a steady trickle of chat requests through the gateway.

With it a newcomer watches the routing learn on the dashboard without writing a client:
``nexus-trio demo`` starts it unless ``--no-traffic`` is given. It sends
``REQUESTS_PER_SECOND`` requests per second on a drift-free grid, two in three streaming (so
TTFT is measured; a period of 3 keeps round robin over two backends from giving each backend
only one kind), never more than ``MAX_IN_FLIGHT`` at once (a tick with that many still
running is skipped). Answers are read to their end and dropped; failures are the demo's point
and are not reported.

Its requests carry the request id ``demo-traffic-<n>``, by which :func:`left_out_of_access_log`
keeps them out of the access log (docs/cli.md#demo): four lines a second would scroll the
banner's commands away, and the dashboard shows them anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import trio

from nexus_trio.api.request_sinks import access_log

log = logging.getLogger("nexus_trio.demo")

REQUESTS_PER_SECOND = 4.0
MAX_IN_FLIGHT = 16
_TIMEOUT_SECONDS = 30.0
#: What the ``X-Request-Id`` of every generated request starts with.
REQUEST_ID_PREFIX = "demo-traffic-"


def _not_generated(record: logging.LogRecord) -> bool:
    access = getattr(record, "access", None)
    return access is None or not access.request_id.startswith(REQUEST_ID_PREFIX)


@contextmanager
def left_out_of_access_log() -> Iterator[None]:
    """While open, the access log drops the lines of the generator's requests (and only
    those: a request id of ``demo-traffic-<n>``)."""
    access_log.addFilter(_not_generated)
    try:
        yield
    finally:
        access_log.removeFilter(_not_generated)


def chat_body(index: int) -> dict[str, object]:
    """The ``index``-th request: model ``demo``, streaming unless ``index`` is a multiple of 3."""
    return {
        "model": "demo",
        "stream": index % 3 != 0,
        "messages": [{"role": "user", "content": f"Demo request {index}: say hello."}],
    }


class TrafficGenerator:
    """Sends demo requests to the gateway at ``url`` until cancelled."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/v1/chat/completions"
        self.in_flight = 0
        self.sent = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send requests until cancelled; reports started at once.

        Blocks forever. Cancellation abandons the requests in flight (their connections are
        closed with the client).
        """
        async with (
            httpx.AsyncClient(timeout=_TIMEOUT_SECONDS) as client,
            trio.open_nursery() as nursery,
        ):
            task_status.started()
            start = trio.current_time()
            tick = 0
            while True:
                if self.in_flight < MAX_IN_FLIGHT:
                    nursery.start_soon(self._send, client, self.sent)
                    self.sent += 1
                tick += 1
                await trio.sleep_until(start + tick / REQUESTS_PER_SECOND)

    async def _send(self, client: httpx.AsyncClient, index: int) -> None:
        self.in_flight += 1
        try:
            request_id = {"X-Request-Id": f"{REQUEST_ID_PREFIX}{index}"}
            body = chat_body(index)
            async with client.stream("POST", self.url, json=body, headers=request_id) as response:
                async for _ in response.aiter_raw():
                    pass
        except httpx.HTTPError as exc:
            log.debug("demo request %d failed: %s", index, exc)
        finally:
            self.in_flight -= 1
