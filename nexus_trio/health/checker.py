"""The health checker: probes every backend periodically and keeps the registry current.

Theory of operation. :meth:`HealthChecker.run` sweeps once before it reports started, so the
daemon is never ready with every backend still ``unknown``; then it sweeps on a fixed grid of
trio times ``anchor + k * interval_seconds`` (drift-free: a slow sweep does not push the next
one back, and ticks a sweep overran are skipped, never run back to back). The interval is read
anew each tick, so a reload re-anchors the grid at the last tick.

A sweep probes all backends concurrently, each under its own ``timeout_seconds``, and applies
each result as soon as it arrives: the pure state machine (:mod:`nexus_trio.health.state`)
decides the new state; a success replaces the model list (an empty list is empty), refreshes
the detected capabilities and forgets "model not found" answers; a failure keeps the last list.
The :class:`HealthStatus` of each backend lives here, keyed by identity (name, url, type), so a
backend whose url or type changes in a reload starts over at ``unknown``. A result for a
backend that a reload replaced mid-sweep is dropped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import httpx
import trio

from nexus_trio.config import HealthCheckConfig
from nexus_trio.health.probe import ProbeResult, probe_backend
from nexus_trio.health.state import HealthStatus, apply
from nexus_trio.metrics import Metrics
from nexus_trio.registry import Backend, HealthState, ProbeRecord, Registry

log = logging.getLogger("nexus_trio.health")

_Identity = tuple[str, str, str]


class HealthChecker:
    """Probes the registry's backends and records their health, models and capabilities.

    The time of the next scheduled sweep is kept on the registry
    (``registry.next_health_sweep_at``, ``math.inf`` when health checks are disabled): routing
    derives ``Retry-After`` for unhealthy backends from it.
    """

    def __init__(
        self,
        registry: Registry,
        http: httpx.AsyncClient,
        settings: Callable[[], HealthCheckConfig],
        *,
        metrics: Metrics,
    ) -> None:
        """A checker of ``registry``'s backends.

        Args:
            registry: The backends to probe and update.
            http: The client probes go through.
            settings: Returns the ``[health_check]`` in force (read each tick and sweep, so a
                reload applies).
            metrics: Where probe durations go (``nexus_health_check_duration_seconds``).
        """
        self._registry = registry
        self._http = http
        self._settings = settings
        self._metrics = metrics
        self._status: dict[_Identity, HealthStatus] = {}
        self.next_sweep_at = trio.current_time()

    @property
    def next_sweep_at(self) -> float:
        """Trio time of the next scheduled sweep (``math.inf`` when disabled)."""
        return self._registry.next_health_sweep_at

    @next_sweep_at.setter
    def next_sweep_at(self, when: float) -> None:
        self._registry.next_health_sweep_at = when

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sweep now, report started, then sweep every ``interval_seconds`` until cancelled.

        With ``[health_check] enabled = false`` every backend is marked healthy once (its
        static models serve) and this only waits to be cancelled. Otherwise the first sweep
        happens before ``task_status.started()``; it takes at most ``timeout_seconds``, the
        bound of each of its concurrent probes. A sweep that raises is logged and the next one
        runs on schedule.

        Blocks forever. Cancellation stops it at once, abandoning a sweep in progress (results
        that already arrived have been applied).
        """
        if not self._settings().enabled:
            for backend in self._registry:
                backend.health = HealthState.HEALTHY
            self.next_sweep_at = math.inf
            task_status.started()
            await trio.sleep_forever()  # returns only by cancellation
        anchor = trio.current_time()
        interval = self._settings().interval_seconds
        tick = 0
        await self._tick()
        task_status.started()
        while True:
            configured = self._settings().interval_seconds
            if configured != interval:
                anchor, tick, interval = anchor + tick * interval, 0, configured
            # The next grid point not yet past, skipping any a slow sweep overran.
            tick = max(tick + 1, math.ceil((trio.current_time() - anchor) / interval))
            self.next_sweep_at = anchor + tick * interval
            await trio.sleep_until(self.next_sweep_at)
            await self._tick()

    async def _tick(self) -> None:
        try:
            await self.sweep()
        except Exception:
            log.exception("health check sweep failed; the next one runs on schedule")

    async def sweep(self) -> None:
        """Probe every configured backend once, concurrently, and apply the results.

        Blocks until every probe has answered or hit ``timeout_seconds`` (a timeout is a
        failure). Cancellation abandons the probes still running; their backends keep their
        state. Raises only on a bug (an unexpected exception from a probe).
        """
        settings = self._settings()
        backends = list(self._registry)
        async with trio.open_nursery() as nursery:
            for backend in backends:
                nursery.start_soon(self._probe, backend, settings)
        configured = {backend.identity() for backend in self._registry}
        self._status = {key: s for key, s in self._status.items() if key in configured}

    async def _probe(self, backend: Backend, settings: HealthCheckConfig) -> None:
        started = trio.current_time()
        result = ProbeResult(
            ok=False,
            models=None,
            capabilities={},
            error=f"Backend '{backend.name}' timed out after {settings.timeout_seconds:g} s.",
        )
        with trio.move_on_after(settings.timeout_seconds):
            result = await probe_backend(self._http, backend)
        elapsed = trio.current_time() - started
        self._metrics.health_check_duration.labels(backend.name).observe(elapsed)
        current = self._registry.get(backend.name)
        if current is not None and current.identity() == backend.identity():
            self._record(current, result, settings)

    def _record(self, backend: Backend, result: ProbeResult, settings: HealthCheckConfig) -> None:
        """Apply one probe result to the backend's state and model list (sync)."""
        key = backend.identity()
        before = self._status.get(key, HealthStatus())
        after = apply(
            before,
            result.ok,
            failure_threshold=settings.failure_threshold,
            recovery_threshold=settings.recovery_threshold,
        )
        self._status[key] = after
        backend.health = after.state
        backend.last_probe = ProbeRecord(
            ok=result.ok, error=None if result.ok else result.error, at_wall=time.time()
        )
        if result.models is not None:
            models = result.models
            detected = {m: c for m, c in backend.detected_capabilities.items() if m in models}
            backend.detected_capabilities = detected | result.capabilities
            backend.discovered_models = models
            backend.missing_models.clear()
            backend.refused_embeddings.clear()
        _log_transition(backend, before, after, result)


def _log_transition(
    backend: Backend, before: HealthStatus, after: HealthStatus, result: ProbeResult
) -> None:
    """One INFO/WARNING line per state change; failures below the threshold at DEBUG."""
    name = backend.name
    if after.state is before.state:
        if not result.ok:
            log.debug(
                "probe of backend '%s' failed (%d in a row): %s",
                name,
                after.consecutive_failures,
                result.error,
            )
        return
    if after.state is HealthState.HEALTHY:
        count = len(backend.discovered_models)
        if before.state is HealthState.UNKNOWN:
            log.info("backend '%s' is healthy (%d model(s) discovered)", name, count)
        else:
            log.info(
                "backend '%s' is healthy again after %d successful probe(s) (%d model(s))",
                name,
                after.consecutive_successes,
                count,
            )
    elif before.state is HealthState.UNKNOWN:
        log.warning("backend '%s' is unhealthy: %s", name, result.error)
    else:
        log.warning(
            "backend '%s' is now unhealthy after %d failed probe(s): %s",
            name,
            after.consecutive_failures,
            result.error,
        )
