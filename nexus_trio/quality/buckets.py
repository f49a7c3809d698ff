"""The time buckets of the quality store: rings of counters with running totals; sync.

Theory of operation. Each agent of the quality store has two rings of buckets
(docs/quality.md#store): 60 of one minute (the 1 h window) and 24 of one hour (the 24 h
window). A bucket holds the counts of successes, failures, client errors and cancelled
attempts, the TTFT sum (integer µs, so sums subtract exactly) and the TTFT histogram (whose sum
is the sample count). Bucket ``i`` of a ring of ``size`` buckets of ``width`` seconds serves
every epoch ``e = int(now // width)`` with ``e % size == i`` and remembers which one it holds;
a bucket still holding an older epoch is zeroed when it is reused. The window at ``now`` is the
current epoch and the ``size - 1`` before it. Each ring also keeps the running totals of its
counted buckets: :meth:`~nexus_trio.quality.store.QualityStore.record_outcome` adds to a bucket
and to the totals (O(1)); expiry subtracts the buckets that have left the window since the last
look (usually none or one), so a recompute reads totals instead of summing buckets. Memory per
agent is fixed. Times never decrease (``trio.current_time()``).
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import sub
from typing import NamedTuple

from nexus_trio.quality.metrics import TTFT_BUCKETS_MS
from nexus_trio.quality.outcome import Outcome

#: Positions in a bucket; the TTFT histogram (whose sum is the sample count) comes last.
SUCCESS, FAILURE, CLIENT_ERROR, CANCELLED, TTFT_SUM_US, HISTOGRAM = range(6)
FIELDS = HISTOGRAM + len(TTFT_BUCKETS_MS)
ZEROS = (0,) * FIELDS
FIELD_OF = {
    Outcome.SUCCESS: SUCCESS,
    Outcome.FAILURE: FAILURE,
    Outcome.CLIENT_ERROR: CLIENT_ERROR,
    Outcome.CANCELLED: CANCELLED,
}
#: The epoch of a bucket that never held one.
NEVER = -(1 << 62)


class Ring:
    """``size`` buckets of ``width`` seconds and the running totals of the counted ones."""

    __slots__ = ("buckets", "epochs", "horizon", "size", "totals", "width")

    def __init__(self, width: int, size: int, now: float) -> None:
        self.width = width
        self.size = size
        self.epochs = [NEVER] * size
        self.buckets = [list(ZEROS) for _ in range(size)]
        self.totals = list(ZEROS)
        #: The oldest epoch the totals may still include; older buckets were subtracted.
        self.horizon = int(now // width) - size + 1

    def add(self, now: float, field: int, ttft_us: int, ttft_bucket: int) -> None:
        """Count one outcome at ``now``; ``ttft_bucket`` < 0 means no TTFT sample."""
        epoch = int(now // self.width)
        index = epoch % self.size
        bucket = self.buckets[index]
        if self.epochs[index] != epoch:
            if self.epochs[index] >= self.horizon:
                self.totals = list(map(sub, self.totals, bucket))
            bucket[:] = ZEROS
            self.epochs[index] = epoch
        totals = self.totals
        bucket[field] += 1
        totals[field] += 1
        if ttft_bucket >= 0:
            bucket[TTFT_SUM_US] += ttft_us
            totals[TTFT_SUM_US] += ttft_us
            bucket[ttft_bucket] += 1
            totals[ttft_bucket] += 1

    def expire(self, now: float) -> None:
        """Subtract from the totals the buckets that have left the window at ``now``."""
        cutoff = int(now // self.width) - self.size
        horizon = self.horizon
        if cutoff < horizon:
            return
        span = range(horizon, cutoff + 1)
        indices = range(self.size) if len(span) >= self.size else (e % self.size for e in span)
        for index in indices:
            if horizon <= self.epochs[index] <= cutoff:
                self.totals = list(map(sub, self.totals, self.buckets[index]))
        self.horizon = cutoff + 1

    def zero(self, field: int) -> None:
        """Forget every count of ``field`` in the ring."""
        for bucket in self.buckets:
            bucket[field] = 0
        self.totals[field] = 0


class MinuteCounts(NamedTuple):
    """One minute of an agent's (or a backend's) history, for charts."""

    #: Successes, failures and client errors (cancelled attempts are not counted).
    requests: int
    failures: int
    #: Mean TTFT of the streaming attempts of that minute; None without samples.
    avg_ttft_ms: float | None


def minute_counts(rings: Iterable[Ring], now: float) -> list[MinuteCounts]:
    """The last 60 buckets of one-minute ``rings``, summed, oldest first (display only).

    O(60 per ring); the rings are not changed.
    """
    current = int(now // 60)
    sums = [[0, 0, 0, 0] for _ in range(60)]
    for ring in rings:
        for index, epoch in enumerate(ring.epochs):
            age = current - epoch
            if 0 <= age < 60:
                bucket = ring.buckets[index]
                row = sums[59 - age]
                row[0] += bucket[SUCCESS] + bucket[CLIENT_ERROR]
                row[1] += bucket[FAILURE]
                row[2] += bucket[TTFT_SUM_US]
                row[3] += sum(bucket[HISTOGRAM:])
    return [
        MinuteCounts(
            requests=ok + failures,
            failures=failures,
            avg_ttft_ms=ttft_us / count / 1000.0 if count else None,
        )
        for ok, failures, ttft_us, count in sums
    ]
