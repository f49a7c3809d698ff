"""Sharing rate-limit consumption across a fleet (docs/keys.md#a-fleet): pure bookkeeping.

Theory of operation. Every gateway admits from its own buckets (:mod:`nexus_trio.keys.limits`).
At each sync, :meth:`RateShare.record` files what this process consumed since the last sync
under the current window (the wall-clock minute); :meth:`RateShare.counts` gives this process's
cumulative counts of the current and previous windows, which the sync writes to the store (an
idempotent HSET: a lost reply costs nothing). The sync reads back the other processes' sums of
the same windows, and :meth:`RateShare.absorb` turns them into what is new since the last read
— which the limiter then takes from this gateway's buckets. Each gateway therefore sees every
other gateway's consumption at most two sync intervals late (their sync, then ours).

After a gap — the first sync of a process, or the first after the store was unreachable — what
the others consumed in the current window is a catch-up (the limiter only empties a bucket for
it, never drives it below zero), and the previous window's is taken as already seen: a gateway
that starts in a busy fleet starts empty, and an outage is not charged back afterwards.
"""

from __future__ import annotations

from nexus_trio.fleet.protocol import RateCounts


class RateShare:
    """This process's consumption per window, and how much of the others' it has absorbed."""

    def __init__(self) -> None:
        self._own: RateCounts = {}
        self._seen: RateCounts = {}

    def record(self, used: dict[tuple[str, str], int], window: int) -> None:
        """Add ``used`` — (key, kind) -> amount since the last sync — to ``window``."""
        for (key, kind), amount in used.items():
            slot = (window, key, kind)
            self._own[slot] = self._own.get(slot, 0) + amount

    def counts(self, window: int) -> RateCounts:
        """This process's counts of ``window`` and the one before (older ones are forgotten)."""
        for table in (self._own, self._seen):
            for slot in [slot for slot in table if slot[0] < window - 1]:
                del table[slot]
        return dict(self._own)

    def absorb(
        self, others: RateCounts, window: int, *, catch_up: bool
    ) -> dict[tuple[str, str], int]:
        """What the other processes consumed since the last call: (key, kind) -> amount.

        With ``catch_up``, only the current ``window``'s news is returned; older news is marked
        seen. A sum that went down (the store lost a window) is not counted again when it
        climbs back.
        """
        news: dict[tuple[str, str], int] = {}
        for slot, total in others.items():
            seen = self._seen.get(slot, 0)
            if total <= seen:
                continue
            self._seen[slot] = total
            if catch_up and slot[0] != window:
                continue
            _, key, kind = slot
            news[(key, kind)] = news.get((key, kind), 0) + total - seen
        return news
