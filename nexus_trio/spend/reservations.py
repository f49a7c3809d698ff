"""Reservations: the worst case of the requests in flight, counted against budgets until their
real cost is charged (docs/spend.md#reservations). Pure bookkeeping, no I/O.

Theory of operation. Right before an attempt is sent to a priced agent, the request path
reserves what that attempt could cost at most (:func:`worst_case_usd`). Budgets are judged on
settled spend plus the reservations in flight, and checking and reserving are one synchronous
step (no checkpoint between them), so no other request is admitted in between. A
:class:`Reservation` is released exactly once: when its attempt ends without an answer (it cost
nothing), or in the same synchronous step that charges the request's real cost. Releasing it
again does nothing.

Totals are running sums; when the last reservation (of the gateway, of a key) is released the
sum is reset to exactly 0, so float rounding never accumulates into a phantom reservation.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexus_trio.spend.pricing import Price

#: The largest reservation (USD): a finite ceiling, so that absurd prices or allowances cannot
#: turn a total into ``inf`` or ``nan`` (which would compare as under every limit).
MAX_RESERVATION_USD = 1e15


def worst_case_usd(price: Price, input_tokens: int, output_tokens: int) -> float:
    """What a request may cost at most at ``price``: every input token uncached, and its whole
    output allowance generated."""
    return price.cost(max(input_tokens, 0), max(output_tokens, 0))


@dataclass(eq=False, slots=True)
class Reservation:
    """USD held for one attempt of the request of key ``key`` (its name)."""

    key: str
    usd: float
    released: bool = False


class Reservations:
    """The reservations in flight: their total, and their total per key name."""

    def __init__(self) -> None:
        self.total_usd = 0.0
        self.count = 0
        self._by_key: dict[str, float] = {}
        self._count_by_key: dict[str, int] = {}

    def key_usd(self, key: str) -> float:
        """USD reserved by the requests of key ``key`` in flight."""
        return self._by_key.get(key, 0.0)

    def reserve(self, key: str, usd: float) -> Reservation:
        """Hold ``usd`` for a request of ``key``: at least 0, at most :data:`MAX_RESERVATION_USD`
        (also when it is not a number)."""
        if not usd <= MAX_RESERVATION_USD:
            usd = MAX_RESERVATION_USD
        elif usd < 0.0:
            usd = 0.0
        self.total_usd += usd
        self.count += 1
        self._by_key[key] = self._by_key.get(key, 0.0) + usd
        self._count_by_key[key] = self._count_by_key.get(key, 0) + 1
        return Reservation(key, usd)

    def release(self, reservation: Reservation) -> None:
        """Give ``reservation`` back; a no-op when it was released already."""
        if reservation.released:
            return
        reservation.released = True
        key = reservation.key
        self.count -= 1
        self.total_usd = self.total_usd - reservation.usd if self.count else 0.0
        left = self._count_by_key[key] - 1
        if left:
            self._count_by_key[key] = left
            self._by_key[key] -= reservation.usd
        else:
            del self._count_by_key[key]
            del self._by_key[key]
