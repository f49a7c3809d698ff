"""The health state machine of one backend (docs/routing.md#health-checks): a pure function, no I/O.

Theory of operation. Every probe result is folded into a :class:`HealthStatus` by
:func:`apply`, which counts the current run of equal results:

* ``unknown`` (never probed) → the first result decides: success → ``healthy``,
  failure → ``unhealthy``;
* ``healthy`` → ``unhealthy`` once ``failure_threshold`` probes in a row have failed;
* ``unhealthy`` → ``healthy`` once ``recovery_threshold`` probes in a row have succeeded.

A result of the other kind ends the run: one success wipes out the failures counted so far,
and one failure the successes, so a flapping backend keeps its state. The counters are not
reset by a transition; after ``unknown`` → ``unhealthy`` the first failure already counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexus_trio.registry import HealthState


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """A backend's health state plus the length of its current run of equal probe results."""

    state: HealthState = HealthState.UNKNOWN
    consecutive_failures: int = 0
    consecutive_successes: int = 0


def apply(
    status: HealthStatus, ok: bool, *, failure_threshold: int, recovery_threshold: int
) -> HealthStatus:
    """Fold one probe result into ``status``.

    Args:
        status: The status before the probe.
        ok: Whether the probe succeeded.
        failure_threshold: Failures in a row that make a healthy backend unhealthy (>= 1).
        recovery_threshold: Successes in a row that make an unhealthy backend healthy (>= 1).

    Returns:
        The status after the probe (``status`` itself is frozen and left as it is).
    """
    state = status.state
    if ok:
        successes = status.consecutive_successes + 1
        if state is HealthState.UNKNOWN or (
            state is HealthState.UNHEALTHY and successes >= recovery_threshold
        ):
            state = HealthState.HEALTHY
        return HealthStatus(state, consecutive_failures=0, consecutive_successes=successes)
    failures = status.consecutive_failures + 1
    if state is HealthState.UNKNOWN or (
        state is HealthState.HEALTHY and failures >= failure_threshold
    ):
        state = HealthState.UNHEALTHY
    return HealthStatus(state, consecutive_failures=failures, consecutive_successes=0)
