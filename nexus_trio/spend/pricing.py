"""Prices per (backend, model) and the cost of one request (docs/spend.md#pricing).

A :class:`PriceList` is built from ``[[pricing]]`` once per configuration. Looking up an agent's
:class:`Price` is one dict read; the answer (also "unpriced") is remembered per agent, so the
request path never scans the list. An unpriced agent costs 0 and asks nothing more of the
request path: no usage is requested from it and no estimate is made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from nexus_trio.config import PriceConfig

#: Characters per token of the estimate used when a backend reports no usage.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token for one agent."""

    input_usd: float
    output_usd: float
    cached_input_usd: float
    #: USD per use of a server-side tool, by kind (docs/spend.md#server-tool-fees).
    tool_usd: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, entry: PriceConfig) -> Price:
        """Per-token prices from a ``[[pricing]]`` entry's per-million prices."""
        cached = entry.cached_input_usd_per_million
        if cached is None:
            cached = entry.input_usd_per_million
        return cls(
            input_usd=entry.input_usd_per_million / 1e6,
            output_usd=entry.output_usd_per_million / 1e6,
            cached_input_usd=cached / 1e6,
            tool_usd=dict(entry.server_tool_usd),
        )

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """USD for these tokens; ``cached_tokens`` are part of ``prompt_tokens``."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        return (
            (prompt_tokens - cached) * self.input_usd
            + cached * self.cached_input_usd
            + completion_tokens * self.output_usd
        )

    def tool_fees(self, uses: msgspec.Raw) -> float:
        """USD for the server-side tool uses a backend reported (a JSON object of counts by
        kind); kinds without a price, and counts that are not non-negative integers, cost 0."""
        if not self.tool_usd or not uses:
            return 0.0
        try:
            counts = _COUNTS.decode(uses)
        except msgspec.DecodeError:
            return 0.0
        return sum(
            count * self.tool_usd.get(kind, 0.0)
            for kind, count in counts.items()
            if type(count) is int and count > 0
        )


_COUNTS = msgspec.json.Decoder(dict[str, object])


def estimated_tokens(chars: int) -> int:
    """Tokens estimated from characters (rounded up), for answers without ``usage``."""
    return math.ceil(chars / CHARS_PER_TOKEN)


class PriceList:
    """``[[pricing]]`` as lookups: the model's own entry, else the backend-wide one, else none."""

    def __init__(self, entries: Sequence[PriceConfig]) -> None:
        """Index ``entries`` (validated by the config: known backends, no duplicates)."""
        self._models: dict[tuple[str, str], Price] = {}
        self._backends: dict[str, Price] = {}
        for entry in entries:
            price = Price.from_config(entry)
            if entry.model is None:
                self._backends[entry.backend] = price
            else:
                self._models[(entry.backend, entry.model)] = price
        self._resolved: dict[tuple[str, str], Price | None] = {}

    def __bool__(self) -> bool:
        return bool(self._models or self._backends)

    def lookup(self, backend: str, model: str) -> Price | None:
        """The price of ``model`` served by ``backend``; None = unpriced (costs 0)."""
        key = (backend, model)
        try:
            return self._resolved[key]
        except KeyError:
            pass
        price = self._models.get(key) or self._backends.get(backend)
        self._resolved[key] = price
        return price
