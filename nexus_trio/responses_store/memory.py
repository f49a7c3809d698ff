"""The stored responses held in memory: the recent ones, and those not yet written
(docs/responses-api.md#conversations).

Theory of operation. A follow-up request usually names the response its client has just
received, so the most recently stored or read responses are kept in a small LRU cache
(:data:`RECENT_ENTRIES`, :data:`RECENT_BYTES`): continuing one needs no disk read. A response
is also *unwritten* from the moment it is stored until the writer has committed it; readers
find it there too, so a response can be continued before it reaches the disk. While the disk
cannot be written, the unwritten ones stay (the newest :data:`UNWRITTEN_BYTES` of them: older
ones are dropped, and the count is returned for the log) and are retried. Plain synchronous
code: the store calls it from the event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from nexus_trio.responses_store.record import StoredResponse

#: The recent responses kept in memory, at most this many and this many bytes.
RECENT_ENTRIES = 1024
RECENT_BYTES = 64 * 1024 * 1024
#: The unwritten responses kept while the disk cannot be written (the newest one always).
UNWRITTEN_BYTES = 64 * 1024 * 1024


class RecentResponses:
    """The recent and the unwritten stored responses; see the module docstring."""

    def __init__(
        self,
        *,
        recent_entries: int = RECENT_ENTRIES,
        recent_bytes: int = RECENT_BYTES,
        unwritten_bytes: int = UNWRITTEN_BYTES,
    ) -> None:
        self._recent: OrderedDict[str, StoredResponse] = OrderedDict()
        self._recent_bytes = 0
        self._max_entries = recent_entries
        self._max_bytes = recent_bytes
        self._unwritten: dict[str, StoredResponse] = {}
        self._unwritten_bytes = 0
        self._max_unwritten = unwritten_bytes

    @property
    def unwritten(self) -> int:
        """How many responses wait to be written."""
        return len(self._unwritten)

    def add(self, record: StoredResponse) -> int:
        """A newly stored response: recent, and unwritten. Returns how many older unwritten
        responses were dropped to make room."""
        self.keep_recent(record)
        self._unwritten[record.id] = record
        self._unwritten_bytes += record.size
        return self._bound_unwritten()

    def keep_recent(self, record: StoredResponse) -> None:
        """Keep ``record`` among the recent ones (the least recently used leave first); one
        larger than the whole cache is not kept."""
        self._drop_recent(record.id)
        if record.size > self._max_bytes:
            return
        self._recent[record.id] = record
        self._recent_bytes += record.size
        while len(self._recent) > self._max_entries or self._recent_bytes > self._max_bytes:
            _, oldest = self._recent.popitem(last=False)
            self._recent_bytes -= oldest.size

    def find(self, response_id: str) -> StoredResponse | None:
        """The response with this id if memory holds it (it becomes the most recent)."""
        record = self._recent.get(response_id)
        if record is not None:
            self._recent.move_to_end(response_id)
            return record
        return self._unwritten.get(response_id)

    def forget(self, response_id: str) -> None:
        """Drop the response with this id, written or not."""
        self._drop_recent(response_id)
        record = self._unwritten.pop(response_id, None)
        if record is not None:
            self._unwritten_bytes -= record.size

    def take_unwritten(self) -> list[StoredResponse]:
        """Every unwritten response, oldest first; they are the caller's to write."""
        taken = list(self._unwritten.values())
        self._unwritten.clear()
        self._unwritten_bytes = 0
        return taken

    def give_back(self, records: Iterable[StoredResponse]) -> int:
        """Responses the caller could not write, to be retried before the newer ones. Returns
        how many unwritten responses were dropped to make room."""
        newer = self._unwritten
        self._unwritten = {record.id: record for record in records}
        self._unwritten.update(newer)
        self._unwritten_bytes = sum(record.size for record in self._unwritten.values())
        return self._bound_unwritten()

    def expire(self, created_before: float) -> None:
        """Drop every response created before ``created_before`` (Unix seconds)."""
        old = [
            record.id
            for records in (self._recent, self._unwritten)
            for record in records.values()
            if record.created_at < created_before
        ]
        for response_id in old:
            self.forget(response_id)

    def _drop_recent(self, response_id: str) -> None:
        record = self._recent.pop(response_id, None)
        if record is not None:
            self._recent_bytes -= record.size

    def _bound_unwritten(self) -> int:
        dropped = 0
        while self._unwritten_bytes > self._max_unwritten and len(self._unwritten) > 1:
            oldest = next(iter(self._unwritten))
            self._unwritten_bytes -= self._unwritten.pop(oldest).size
            dropped += 1
        return dropped
