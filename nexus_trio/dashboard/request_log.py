"""The ring buffer of the last finished proxy requests, for the dashboard's request log.

It is a sink of finished proxy requests (:meth:`RequestLog.append`, registered by the wiring):
one tuple per request, a handful of attribute reads and a ``deque`` append. Turning
entries into JSON objects happens only when a snapshot is built, once per second, and only
while a dashboard is connected. An entry holds metadata only: never prompts, completions or
keys, only the key's configured name (each tenant is shown its own; docs/keys.md#roles). Every
entry carries a sequence number so that a reader can ask for the entries it has not seen yet
(:meth:`RequestLog.entries_after`).
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

from nexus_trio.gateway.record import RequestRecord


class RequestEntry(NamedTuple):
    """One finished proxy request as the dashboard shows it."""

    seq: int
    #: ``time.time()`` when the request finished.
    at_wall: float
    request_id: str
    path: str
    requested_model: str | None
    served_model: str | None
    backend: str | None
    #: The final status; None when the client went away or the gateway drained first.
    status: int | None
    truncated: bool
    error_code: str | None
    duration_ms: float
    ttft_ms: float | None
    attempts: int
    route_reason: str | None
    stream: bool
    #: The name of the key the request presented; None when inbound auth is off.
    key: str | None


class RequestLog:
    """The last ``size`` finished proxy requests, oldest first; synchronous."""

    __slots__ = ("_entries", "last_seq")

    def __init__(self, size: int) -> None:
        self._entries: deque[RequestEntry] = deque(maxlen=size)
        #: The sequence number of the newest entry (0 before the first).
        self.last_seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, record: RequestRecord) -> None:
        """Remember the finished request ``record``; O(1).

        A request that presented no valid key while keys are on is not kept
        (docs/api.md#dashboard): anyone can send those, and they must not push real entries
        out of the ring.
        """
        if record.unauthenticated:
            return
        seq = self.last_seq = self.last_seq + 1
        self._entries.append(
            RequestEntry(
                seq,
                record.at_wall,
                record.request_id,
                record.path,
                record.requested_model,
                record.served_model,
                record.backend,
                record.status,
                record.truncated,
                record.error_code,
                record.elapsed_seconds * 1000.0,
                record.ttft_ms,
                record.attempts,
                record.route_reason,
                record.stream,
                None if record.key is None else record.key.name,
            )
        )

    def entries_after(self, seq: int) -> list[RequestEntry]:
        """The entries newer than sequence number ``seq``, oldest first."""
        if seq >= self.last_seq:
            return []
        newer = min(self.last_seq - seq, len(self._entries))
        return list(self._entries)[-newer:]


def entry_object(entry: RequestEntry, *, with_key: bool) -> dict[str, Any]:
    """The JSON object of one entry (durations rounded to 0.1 ms); ``key`` only ``with_key``
    (for admins: a tenant's entries are all its own)."""
    entry_json = {
        "seq": entry.seq,
        "time": round(entry.at_wall, 3),
        "request_id": entry.request_id,
        "route": entry.path,
        "requested_model": entry.requested_model,
        "served_model": entry.served_model,
        "backend": entry.backend,
        "status": entry.status,
        "truncated": entry.truncated,
        "error_code": entry.error_code,
        "duration_ms": round(entry.duration_ms, 1),
        "ttft_ms": None if entry.ttft_ms is None else round(entry.ttft_ms, 1),
        "attempts": entry.attempts,
        "route_reason": entry.route_reason,
        "stream": entry.stream,
    }
    if with_key:
        entry_json["key"] = entry.key
    return entry_json
