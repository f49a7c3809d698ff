"""What the gateways of a fleet keep in the shared store, and how (docs/spend.md#a-fleet).

Pure: key names, the encoding of fields and values, and the two messages one exchange with the
store carries (:class:`Push` out, :class:`Pull` back). The store's layout:

``nexus-trio:spend:<month>:<ledger id>`` (hash)
    One ledger's cumulative totals of the month: field ``["key","backend","model"]``, value
    ``[usd, requests, estimated_usd]`` (JSON). Written with HSET, so writing again is harmless.
``nexus-trio:spend:<month>:versions`` (hash)
    Ledger id -> a token unique to each push of that ledger: readers fetch a ledger's hash
    again only when its token changed. The fleet's ledgers of the month are its fields.
``nexus-trio:rate:<window>`` (hash, expires after :data:`RATE_TTL_SECONDS`)
    Rate-limit consumption in one wall-clock minute (``window`` = epoch seconds // 60): field
    ``["process","key","kind"]``, value the count that gateway process consumed in that minute
    (cumulative, HSET again each sync). ``kind`` is ``requests`` or ``tokens``.

JSON is used for fields because key, backend and model names may contain any character.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from nexus_trio.spend.tally import SpendKey, SpendRow

PREFIX = "nexus-trio"
#: Rate-limit consumption is shared in windows of one wall-clock minute.
RATE_WINDOW_SECONDS = 60
#: A window's hash outlives the two windows that are read (current and previous).
RATE_TTL_SECONDS = 180

Rows = dict[SpendKey, SpendRow]
#: (window, key name, kind) -> count.
RateCounts = dict[tuple[int, str, str], int]

_FIELD = msgspec.json.Decoder(tuple[str, str, str])
_ROW = msgspec.json.Decoder(tuple[float, int, float])
_ENCODE = msgspec.json.Encoder()


def spend_key(month: str, ledger_id: str) -> str:
    return f"{PREFIX}:spend:{month}:{ledger_id}"


def versions_key(month: str) -> str:
    return f"{PREFIX}:spend:{month}:versions"


def rate_key(window: int) -> str:
    return f"{PREFIX}:rate:{window}"


def window_of(wall: float) -> int:
    """The rate window (wall-clock minute) that ``wall`` seconds since the epoch fall in."""
    return int(wall // RATE_WINDOW_SECONDS)


def encode_rows(rows: Mapping[SpendKey, SpendRow]) -> dict[bytes, bytes]:
    """A ledger's month rows as the fields and values of its hash."""
    return {
        _ENCODE.encode(key): _ENCODE.encode((row.usd, row.requests, row.estimated_usd))
        for key, row in rows.items()
    }


def decode_rows(raw: Mapping[bytes, bytes]) -> Rows:
    """The rows of one ledger's hash.

    Raises:
        msgspec.DecodeError: a field or value is not what a gateway writes.
    """
    rows: Rows = {}
    for raw_key, raw_row in raw.items():
        usd, requests, estimated = _ROW.decode(raw_row)
        rows[_FIELD.decode(raw_key)] = SpendRow(usd, requests, estimated)
    return rows


def add_rows(into: Rows, rows: Mapping[SpendKey, SpendRow]) -> None:
    for key, row in rows.items():
        into.setdefault(key, SpendRow()).add(row.usd, row.requests, row.estimated_usd)


def encode_rate_field(process_id: str, key: str, kind: str) -> bytes:
    return _ENCODE.encode((process_id, key, kind))


def others_rate_counts(window: int, raw: Mapping[bytes, bytes], process_id: str) -> RateCounts:
    """The counts of one window's hash summed over every process but ``process_id``.

    Raises:
        msgspec.DecodeError: a field is not what a gateway writes.
        ValueError: a value is not an integer.
    """
    counts: RateCounts = {}
    for raw_field, raw_count in raw.items():
        process, key, kind = _FIELD.decode(raw_field)
        if process != process_id:
            counts[(window, key, kind)] = counts.get((window, key, kind), 0) + int(raw_count)
    return counts


@dataclass(frozen=True, slots=True)
class Push:
    """What one exchange writes, and what it asks to read back."""

    #: This gateway's ledger; empty when no spend is kept (rate limits only).
    ledger_id: str
    #: This process, in the rate windows (a restarted gateway counts afresh).
    process_id: str
    #: Unique to this push: the ledger's version token.
    token: str
    #: The month whose fleet totals to read.
    month: str
    #: Months the ledger owes (cumulative rows).
    spend: dict[str, Rows] = field(default_factory=dict)
    #: This process's cumulative consumption per (window, key, kind).
    rates: RateCounts = field(default_factory=dict)
    #: The windows whose consumption to read.
    windows: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Pull:
    """What one exchange read: the other ledgers' month and the other processes' windows."""

    month: str
    #: Summed rows of every other ledger; None when no spend is kept.
    others: Rows | None
    #: Ledgers with spend in the month, this one included.
    ledgers: int
    #: Whether the store holds a version of this ledger for the month.
    own_present: bool
    #: The other processes' consumption per (window, key, kind).
    rates: RateCounts
