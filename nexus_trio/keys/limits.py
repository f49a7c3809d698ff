"""Per-key rate limits: request and token buckets per named key (docs/keys.md#rate-limits).

Theory of operation. Each limit is a token bucket holding at most one minute's allowance and
refilled continuously (``requests_per_minute`` / 60 per second), so a key may burst up to its
per-minute limit and then goes at its rate. A request is admitted when its key's request bucket
holds at least one request (which it takes) and its token bucket is not empty. The tokens a
request used — its usage, or the estimate — are taken from the token bucket when it ends, which
may leave it below zero: the key then waits until it refills. Time comes in as an argument
(trio time), so everything here is synchronous and testable without a clock.

The state belongs to key names and survives reloads; the limits are read from the key's current
entry at each call. The headers follow OpenAI's ``x-ratelimit-*``: limit, what remains, and
the time until the bucket is full again.

In a fleet (docs/keys.md#a-fleet) every gateway keeps admitting from its own buckets, and the
store sync shares what was consumed: with :attr:`RateLimiter.sharing` set, admissions and token
charges are also counted in :attr:`RateLimiter.used` (one dict update), which the sync takes with
:meth:`RateLimiter.take_used`; what the other gateways consumed comes back through
:meth:`RateLimiter.absorb`, which takes it from this gateway's buckets as if it had been
consumed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nexus_trio.config import KeyConfig
from nexus_trio.errors import RateLimitExceeded


@dataclass(slots=True)
class _Bucket:
    level: float
    updated: float

    def refill(self, per_minute: int, now: float) -> None:
        self.level = min(self.level + (now - self.updated) * per_minute / 60.0, per_minute)
        self.updated = now


def reset_duration(seconds: float) -> str:
    """OpenAI's duration format: ``250ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{round(seconds, 1):g}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s"


class RateLimiter:
    """The buckets of every named key with a limit."""

    def __init__(self) -> None:
        self._requests: dict[str, _Bucket] = {}
        self._tokens: dict[str, _Bucket] = {}
        #: Count consumption in :attr:`used` for the fleet's store sync.
        self.sharing = False
        #: (key name, ``requests`` or ``tokens``) -> consumed since the last :meth:`take_used`.
        self.used: dict[tuple[str, str], int] = {}

    def _bucket(self, table: dict[str, _Bucket], name: str, limit: int, now: float) -> _Bucket:
        bucket = table.get(name)
        if bucket is None:
            bucket = table[name] = _Bucket(float(limit), now)
        else:
            bucket.refill(limit, now)
        return bucket

    def admit(self, name: str, key: KeyConfig, now: float) -> dict[str, str]:
        """Take one request from ``key``'s allowance; return its ``x-ratelimit-*`` headers.

        Raises:
            RateLimitExceeded: no request or no token left; ``Retry-After`` says when there is.
        """
        rpm, tpm = key.requests_per_minute, key.tokens_per_minute
        if rpm:
            requests = self._bucket(self._requests, name, rpm, now)
            if requests.level < 1:
                wait = (1 - requests.level) * 60.0 / rpm
                raise self._exceeded(name, "requests", rpm, wait, self.headers(name, key, now))
            requests.level -= 1
            if self.sharing:
                used = (name, "requests")
                self.used[used] = self.used.get(used, 0) + 1
        if tpm:
            tokens = self._bucket(self._tokens, name, tpm, now)
            if tokens.level <= 0:
                wait = (1 - tokens.level) * 60.0 / tpm
                raise self._exceeded(name, "tokens", tpm, wait, self.headers(name, key, now))
        return self.headers(name, key, now)

    def charge_tokens(self, name: str, key: KeyConfig, tokens: int, now: float) -> None:
        """Take the tokens a finished request used from ``key``'s token allowance."""
        if key.tokens_per_minute and tokens > 0:
            self._bucket(self._tokens, name, key.tokens_per_minute, now).level -= tokens
            if self.sharing:
                used = (name, "tokens")
                self.used[used] = self.used.get(used, 0) + tokens

    def take_used(self) -> dict[tuple[str, str], int]:
        """What was consumed since the last call, and start counting afresh."""
        used, self.used = self.used, {}
        return used

    def absorb(
        self, name: str, key: KeyConfig, kind: str, amount: int, now: float, *, catch_up: bool
    ) -> None:
        """Take ``amount`` that other gateways consumed from ``key``'s ``kind`` bucket.

        Steady-state amounts may leave the bucket below zero (down to minus one minute's
        allowance): the fleet then waits, as one gateway would. A ``catch_up`` — what was
        consumed while this gateway was not syncing — only empties the bucket, never more.
        """
        limit = key.requests_per_minute if kind == "requests" else key.tokens_per_minute
        if not limit or amount <= 0:
            return
        table = self._requests if kind == "requests" else self._tokens
        bucket = self._bucket(table, name, limit, now)
        floor = min(bucket.level, 0.0) if catch_up else -float(limit)
        bucket.level = max(bucket.level - amount, floor)

    def headers(self, name: str, key: KeyConfig, now: float) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers of ``key`` now (only the kinds it limits)."""
        out: dict[str, str] = {}
        for kind, limit, table in (
            ("requests", key.requests_per_minute, self._requests),
            ("tokens", key.tokens_per_minute, self._tokens),
        ):
            if not limit:
                continue
            bucket = self._bucket(table, name, limit, now)
            level = max(bucket.level, 0.0)
            out[f"x-ratelimit-limit-{kind}"] = str(limit)
            out[f"x-ratelimit-remaining-{kind}"] = str(math.floor(level))
            out[f"x-ratelimit-reset-{kind}"] = reset_duration((limit - bucket.level) * 60.0 / limit)
        return out

    @staticmethod
    def _exceeded(
        name: str, kind: str, limit: int, wait: float, headers: dict[str, str]
    ) -> RateLimitExceeded:
        headers["Retry-After"] = str(max(1, math.ceil(wait - 1e-9)))  # not 21 for 20.000001
        return RateLimitExceeded(
            f"Key '{name}' is over its limit of {limit} {kind} per minute.",
            kind=kind,
            headers=headers,
        )
