"""The snapshot publisher: one snapshot per second, built once and shared by every dashboard.

Theory of operation. :meth:`SnapshotPublisher.run` is a background service. While no dashboard
is connected it waits and costs nothing. When the first one subscribes
(:meth:`SnapshotPublisher.subscribe`) it wakes, builds a snapshot at once, then one per
``PERIOD_SECONDS`` on a drift-free grid, until the last one leaves. Each snapshot is encoded
once, as a complete server-sent event, into a :class:`Published`; connected dashboards wait
for the next one with :meth:`SnapshotPublisher.wait_published` and send the same bytes.
A dashboard that falls behind skips snapshots (only the latest is kept); it catches up on the
request-log entries it missed from the ring buffer itself (``log_from`` in each snapshot
says which entries the snapshot carries).

What is built and encoded each period is the admin's snapshot. A tenant key's view
(docs/keys.md#roles) is derived from it by :meth:`SnapshotPublisher.event`, once per snapshot
and tenant key however many of its dashboards are connected, and cached in the
:class:`Published`: the cost per second is one snapshot plus one cheap view per tenant key
watching, bounded by ``dashboard.max_connections``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

from nexus_trio.dashboard.request_log import RequestEntry, RequestLog
from nexus_trio.dashboard.snapshot import (
    RateWindow,
    SnapshotSources,
    build_snapshot,
    tenant_snapshot,
)
from nexus_trio.gateway.statistics import GatewayStatistics
from nexus_trio.keys import ClientKey

#: One snapshot per this many seconds while a dashboard is connected.
PERIOD_SECONDS = 1.0

_ENCODER = msgspec.json.Encoder()


def server_sent_event(event: str, data: object) -> bytes:
    """One server-sent event whose data is ``data`` as compact JSON (a single line)."""
    return b"event: " + event.encode() + b"\ndata: " + _ENCODER.encode(data) + b"\n\n"


@dataclass(eq=False, slots=True)
class Published:
    """One published snapshot."""

    #: Increases by one per snapshot.
    seq: int
    #: The request-log sequence number the snapshot's entries start after.
    log_from: int
    #: The request-log sequence number of its newest entry.
    log_to: int
    #: The gateway's statistics it was built from.
    statistics: GatewayStatistics
    #: The snapshot as an admin sees it.
    document: dict[str, Any]
    #: The request-log entries it carries.
    entries: list[RequestEntry]
    #: The admin's ``snapshot`` server-sent event, ready to send.
    event: bytes
    #: Tenant keys' ``snapshot`` events by key name, each encoded when first asked for.
    tenant_events: dict[str, bytes] = field(default_factory=dict)


class SnapshotPublisher:
    """Builds the dashboard snapshot while anyone watches; see the module docstring."""

    def __init__(self, sources: SnapshotSources, request_log: RequestLog) -> None:
        self._sources = sources
        self.request_log = request_log
        self._rates = RateWindow()
        #: Each tenant key's rate window (key names are configured: bounded).
        self._tenant_rates: dict[str, RateWindow] = {}
        self._seq = 0
        self._log_seq = request_log.last_seq
        self.connected = 0
        #: Connected dashboards of each tenant key, by key name.
        self.connected_by_tenant: dict[str, int] = {}
        #: The latest snapshot; None while nobody watches (so nobody gets a stale one).
        self.latest: Published | None = None
        self._someone_connected = trio.Event()
        self._next = trio.Event()

    @contextmanager
    def subscribe(self, tenant: ClientKey | None = None) -> Iterator[None]:
        """Count a connected dashboard (of ``tenant``, None for an admin) for the duration of
        the ``with`` block."""
        self.connected += 1
        if tenant is not None:
            by_tenant = self.connected_by_tenant
            by_tenant[tenant.name] = by_tenant.get(tenant.name, 0) + 1
        self._someone_connected.set()
        try:
            yield
        finally:
            self.connected -= 1
            if tenant is not None:
                left = self.connected_by_tenant.pop(tenant.name) - 1
                if left:
                    self.connected_by_tenant[tenant.name] = left
            if not self.connected:
                self._someone_connected = trio.Event()
                self.latest = None

    def event(self, published: Published, tenant: ClientKey | None) -> bytes:
        """The ``snapshot`` event of ``published`` as ``tenant`` (None: an admin) sees it.

        A tenant's view is derived from the admin's snapshot the first time one of its
        dashboards asks, then served from ``published.tenant_events``.
        """
        if tenant is None:
            return published.event
        event = published.tenant_events.get(tenant.name)
        if event is None:
            rates = self._tenant_rates.get(tenant.name)
            if rates is None:
                rates = self._tenant_rates[tenant.name] = RateWindow()
            document = tenant_snapshot(
                published.statistics, published.document, published.entries, tenant, rates
            )
            event = published.tenant_events[tenant.name] = server_sent_event("snapshot", document)
        return event

    async def wait_published(self, after: int) -> Published:
        """Block until a snapshot newer than sequence number ``after`` exists; return it.

        Returns at once when the latest is already newer. Cancellation leaves nothing behind.
        """
        while self.latest is None or self.latest.seq <= after:
            await self._next.wait()
        return self.latest

    def publish(self) -> Published:
        """Build, encode and publish one snapshot now; wake every waiting dashboard."""
        log_from = self._log_seq
        entries = self.request_log.entries_after(log_from)
        statistics = self._sources.statistics()
        document = build_snapshot(statistics, self._sources, entries, self._rates, log_from)
        self._seq += 1
        self._log_seq = self.request_log.last_seq
        published = Published(
            seq=self._seq,
            log_from=log_from,
            log_to=self._log_seq,
            statistics=statistics,
            document=document,
            entries=entries,
            event=server_sent_event("snapshot", document),
        )
        self.latest = published
        woken, self._next = self._next, trio.Event()
        woken.set()
        return published

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Publish once per period while a dashboard is connected; blocks until cancelled.

        Reports started at once (nothing to prepare). Cancellation stops it between
        snapshots; nothing needs closing.
        """
        task_status.started()
        while True:
            await self._someone_connected.wait()
            start = trio.current_time()
            tick = 0
            while self.connected:
                self.publish()
                tick += 1
                await trio.sleep_until(start + tick * PERIOD_SECONDS)
