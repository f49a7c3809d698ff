"""The quality store: outcomes per agent in time buckets, and the exclusion state machine.

Theory of operation.

**Buckets.** Each agent's record (:mod:`nexus_trio.quality.record`) has two rings of buckets
(:mod:`nexus_trio.quality.buckets`): 60 of one minute (the 1 h window) and 24 of one hour (the
24 h window), each keeping the running totals of its window, so a recompute reads totals
instead of summing buckets.

**State machine** (docs/quality.md#exclusion), kept per agent in the store:

- ``healthy`` → ``excluded`` at once when a failure makes ``consecutive_failures`` reach
  ``config.consecutive_failures`` (fast ejection), or at a recompute when the 1 h error rate is
  above ``error_rate_threshold`` with at least ``min_requests`` successes + failures (client
  errors and cancelled attempts never count). The probe time is then the exclusion time plus
  ``probe_interval_seconds`` times the backoff factor (1 after a recovery).
- ``excluded`` is shown as ``probing`` once its probe time has come. Routing then forces one
  request to it (:meth:`QualityStore.probe_due`); the request path reports that with
  :meth:`QualityStore.probe_started`, which marks the probe in flight so no second request is
  forced meanwhile (a probe whose outcome never comes is presumed lost after the longest
  backoff). The next success or failure of the agent from its probe time on is the probe's
  result — also when a request reached it without being forced (panic with one candidate).
  Success: ``healthy``, ``consecutive_failures`` 0, its 1 h failure counts zeroed (so the next
  recompute does not exclude it again), backoff factor 1. Failure: ``excluded`` again, the
  backoff factor doubled up to 10. A cancelled or client-error probe only ends the in-flight mark.

**Snapshot.** :meth:`QualityStore.recompute` builds a new dict of
:class:`~nexus_trio.quality.metrics.AgentQualityMetrics` for the configured agents (purging
the others); routing reads it with :meth:`QualityStore.get`, one dict lookup. A snapshot is
never mutated: a state change caused by one outcome publishes a copy in which that agent's
entry is rebuilt from its counts at that moment. Other agents' rates change only at a recompute.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from nexus_trio.config import QualityConfig
from nexus_trio.quality.buckets import (
    FAILURE,
    FIELD_OF,
    HISTOGRAM,
    SUCCESS,
    MinuteCounts,
    minute_counts,
)
from nexus_trio.quality.metrics import NEUTRAL, TTFT_BUCKETS_MS, AgentQualityMetrics
from nexus_trio.quality.outcome import Outcome
from nexus_trio.quality.record import AgentRecord

#: ``(backend name, model)``, as :attr:`nexus_trio.routing.Agent.key`.
AgentKey = tuple[str, str]

#: The backoff factor doubles after each failed probe, up to this.
MAX_BACKOFF_FACTOR = 10.0

log = logging.getLogger("nexus_trio.quality")


class QualityStore:
    """Per-agent outcome history, exclusion state and the last metrics snapshot; synchronous."""

    def __init__(self, config: QualityConfig) -> None:
        """An empty store: every agent has :data:`NEUTRAL` metrics until it has history."""
        self.config = config
        self._agents: dict[AgentKey, AgentRecord] = {}
        self._snapshot: dict[AgentKey, AgentQualityMetrics] = {}
        self._configure_listeners: list[Callable[[], None]] = []

    def configure(self, config: QualityConfig) -> None:
        """Use a reloaded ``[quality]``; its thresholds apply from the next recompute. Then
        call every :meth:`on_configure` listener."""
        self.config = config
        for listener in self._configure_listeners:
            listener()

    def on_configure(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (synchronously, no arguments) after every :meth:`configure`."""
        self._configure_listeners.append(listener)

    def forget_backend(self, backend: str) -> None:
        """Drop every agent of ``backend``: a new url or type is a new backend
        (docs/configuration.md#reload)."""
        for key in [key for key in self._agents if key[0] == backend]:
            del self._agents[key]
        self._snapshot = {key: m for key, m in self._snapshot.items() if key[0] != backend}

    @property
    def snapshot(self) -> Mapping[AgentKey, AgentQualityMetrics]:
        """The last snapshot, read-only; a later change replaces it rather than mutating it."""
        return MappingProxyType(self._snapshot)

    def get(self, key: AgentKey) -> AgentQualityMetrics:
        """The agent's entry in the last snapshot; :data:`NEUTRAL` if it has none."""
        return self._snapshot.get(key, NEUTRAL)

    def record_outcome(
        self,
        key: AgentKey,
        outcome: Outcome,
        *,
        now: float,
        wall: float,
        ttft_ms: float | None = None,
        streaming: bool = False,
    ) -> None:
        """Count the outcome of one attempt on ``key``; O(1).

        Args:
            key: The agent attempted.
            outcome: How the attempt ended (docs/quality.md#outcomes).
            now: ``trio.current_time()`` at the end of the attempt.
            wall: ``time.time()`` then; it only renders ``last_failure_time``.
            ttft_ms: The attempt's TTFT, for a streaming attempt that produced content.
            streaming: Whether the attempt was a streaming one.
        """
        agent = self._agents.get(key)
        if agent is None:
            agent = self._agents[key] = AgentRecord(now)
        field = FIELD_OF[outcome]
        if ttft_ms is None:
            ttft_us, ttft_bucket = 0, -1
        else:
            ttft_us = round(ttft_ms * 1000.0)
            ttft_bucket = HISTOGRAM + bisect_left(TTFT_BUCKETS_MS, ttft_ms)
        agent.hour.add(now, field, ttft_us, ttft_bucket)
        agent.day.add(now, field, ttft_us, ttft_bucket)
        if streaming:
            agent.last_streaming = now
        if field == FAILURE:
            agent.consecutive_failures += 1
            agent.last_failure_wall = wall
        elif field == SUCCESS:
            agent.consecutive_failures = 0
        if agent.excluded:
            if now >= agent.probe_at:
                self._resolve_probe(key, agent, field, now)
        elif field == FAILURE and agent.consecutive_failures >= self.config.consecutive_failures:
            agent.exclude(now, self.config.probe_interval_seconds, "consecutive_failures")
            log.warning(
                "agent %s/%s excluded: %d consecutive failures; probe in %.0f s",
                *key,
                agent.consecutive_failures,
                agent.probe_at - now,
            )
            self._publish(key, agent, now)

    def probe_started(self, key: AgentKey, *, now: float) -> None:
        """Note that a request was routed to ``key`` with reason ``probe``.

        For an excluded agent this marks its probe in flight. For a healthy one it was a TTFT
        probe (forced only for streaming requests, docs/quality.md#ttft-penalty): it counts as its
        latest streaming attempt, so no other request is forced to it meanwhile.
        """
        agent = self._agents.get(key)
        if agent is None:
            return
        if agent.excluded:
            agent.probe_since = now
        else:
            agent.last_streaming = now

    def probe_due(self, key: AgentKey, now: float) -> bool:
        """Whether ``key`` is excluded, its probe time has come and no probe is in flight."""
        agent = self._agents.get(key)
        if agent is None or not agent.excluded or now < agent.probe_at:
            return False
        lost_after = self.config.probe_interval_seconds * MAX_BACKOFF_FACTOR
        return agent.probe_since is None or now - agent.probe_since >= lost_after

    def next_probe_time(self, key: AgentKey) -> float | None:
        """When the excluded agent ``key`` may be probed; None if it is not excluded."""
        agent = self._agents.get(key)
        return agent.probe_at if agent is not None and agent.excluded else None

    def exclusion_reason(self, key: AgentKey) -> str | None:
        """Why the excluded agent ``key`` was excluded; None if it is not excluded."""
        agent = self._agents.get(key)
        return agent.exclusion_reason if agent is not None and agent.excluded else None

    def minute_history(self, keys: Iterable[AgentKey], now: float) -> list[MinuteCounts]:
        """The last 60 one-minute buckets summed over ``keys``, oldest first (display only).

        O(60 * agents); the store is not changed. A readmitted agent's failures were zeroed
        (see the module docstring), so they are gone from its history too.
        """
        rings = [agent.hour for key in keys if (agent := self._agents.get(key)) is not None]
        return minute_counts(rings, now)

    def last_streaming_attempt(self, key: AgentKey) -> float | None:
        """The trio time of the agent's latest streaming attempt (or TTFT probe); None if none."""
        agent = self._agents.get(key)
        return None if agent is None else agent.last_streaming

    def recompute(self, now: float, configured: Iterable[AgentKey]) -> None:
        """Build a new snapshot at ``now`` and apply the error-rate rule (docs/quality.md#store,
        docs/quality.md#exclusion).

        Agents not in ``configured`` are forgotten. A healthy agent is excluded when its
        1 h error rate is above the threshold with the minimum sample, or its run of failures
        has reached ``consecutive_failures`` (which a reload may have lowered).
        """
        for key in self._agents.keys() - set(configured):
            del self._agents[key]
        config = self.config
        snapshot: dict[AgentKey, AgentQualityMetrics] = {}
        for key, agent in self._agents.items():
            entry = agent.metrics(now)
            if not agent.excluded and (
                entry.consecutive_failures >= config.consecutive_failures
                or (
                    entry.successes_1h + entry.failures_1h >= config.min_requests
                    and entry.error_rate_1h > config.error_rate_threshold
                )
            ):
                reason = (
                    "consecutive_failures"
                    if entry.consecutive_failures >= config.consecutive_failures
                    else "high_error_rate"
                )
                agent.exclude(now, config.probe_interval_seconds, reason)
                entry = agent.metrics(now)
                log.warning(
                    "agent %s/%s excluded: error rate %.0f%% over 1 h (%d requests); "
                    "probe in %.0f s",
                    *key,
                    entry.error_rate_1h * 100,
                    entry.successes_1h + entry.failures_1h,
                    agent.probe_at - now,
                )
            snapshot[key] = entry
        self._snapshot = snapshot

    def _resolve_probe(self, key: AgentKey, agent: AgentRecord, field: int, now: float) -> None:
        """Apply the outcome of an excluded agent at or after its probe time."""
        agent.probe_since = None
        if field == SUCCESS:
            agent.excluded = False
            agent.backoff_factor = 1.0
            agent.hour.zero(FAILURE)
            log.info("agent %s/%s readmitted: its probe succeeded", *key)
        elif field == FAILURE:
            agent.backoff_factor = min(agent.backoff_factor * 2.0, MAX_BACKOFF_FACTOR)
            agent.exclude(now, self.config.probe_interval_seconds, "probe_failed")
            log.info("agent %s/%s probe failed; next probe in %.0f s", *key, agent.probe_at - now)
        else:
            return
        self._publish(key, agent, now)

    def _publish(self, key: AgentKey, agent: AgentRecord, now: float) -> None:
        """Replace the agent's snapshot entry at once, in a copy of the snapshot."""
        self._snapshot = {**self._snapshot, key: agent.metrics(now)}
