"""The health state machine (docs/routing.md#health-checks): every transition, no event loop."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from nexus_trio.health.state import HealthStatus, apply
from nexus_trio.registry import HealthState

UNKNOWN, HEALTHY, UNHEALTHY = HealthState.UNKNOWN, HealthState.HEALTHY, HealthState.UNHEALTHY


def run(
    results: Iterable[bool],
    start: HealthStatus | None = None,
    *,
    failure_threshold: int = 3,
    recovery_threshold: int = 2,
) -> list[HealthState]:
    """The state after each result, starting from ``start`` (default: unknown)."""
    status = start or HealthStatus()
    states = []
    for ok in results:
        status = apply(
            status,
            ok,
            failure_threshold=failure_threshold,
            recovery_threshold=recovery_threshold,
        )
        states.append(status.state)
    return states


def test_a_new_status_is_unknown_with_no_counts() -> None:
    assert HealthStatus() == HealthStatus(UNKNOWN, 0, 0)


@pytest.mark.parametrize(("ok", "state"), [(True, HEALTHY), (False, UNHEALTHY)])
@pytest.mark.parametrize("threshold", [1, 5])
def test_first_result_decides(ok: bool, state: HealthState, threshold: int) -> None:
    status = apply(HealthStatus(), ok, failure_threshold=threshold, recovery_threshold=threshold)
    assert status.state is state
    assert (status.consecutive_successes, status.consecutive_failures) == ((1, 0) if ok else (0, 1))


def test_healthy_turns_unhealthy_at_the_failure_threshold() -> None:
    states = run([True, False, False, False, False], failure_threshold=3)
    assert states == [HEALTHY, HEALTHY, HEALTHY, UNHEALTHY, UNHEALTHY]


def test_unhealthy_turns_healthy_at_the_recovery_threshold() -> None:
    states = run([False, True, True, True], recovery_threshold=2)
    assert states == [UNHEALTHY, UNHEALTHY, HEALTHY, HEALTHY]


def test_threshold_one_flips_on_every_change() -> None:
    states = run([True, False, True, True, False], failure_threshold=1, recovery_threshold=1)
    assert states == [HEALTHY, UNHEALTHY, HEALTHY, HEALTHY, UNHEALTHY]


def test_a_success_resets_the_failure_count() -> None:
    states = run([True, False, False, True, False, False, False], failure_threshold=3)
    assert states == [HEALTHY] * 6 + [UNHEALTHY]


def test_a_failure_resets_the_success_count() -> None:
    states = run([False, True, False, True, True], recovery_threshold=2)
    assert states == [UNHEALTHY] * 4 + [HEALTHY]


def test_counts_track_the_current_run() -> None:
    status = HealthStatus()
    for ok in (True, True, False, False):
        status = apply(status, ok, failure_threshold=3, recovery_threshold=2)
    assert status == HealthStatus(HEALTHY, consecutive_failures=2, consecutive_successes=0)
    status = apply(status, True, failure_threshold=3, recovery_threshold=2)
    assert status == HealthStatus(HEALTHY, consecutive_failures=0, consecutive_successes=1)


def test_successes_while_healthy_and_failures_while_unhealthy_keep_the_state() -> None:
    healthy = HealthStatus(HEALTHY, consecutive_successes=7)
    unhealthy = HealthStatus(UNHEALTHY, consecutive_failures=7)
    assert run([True] * 3, healthy) == [HEALTHY] * 3
    assert run([False] * 3, unhealthy) == [UNHEALTHY] * 3


def test_apply_does_not_change_its_input() -> None:
    status = HealthStatus(HEALTHY, consecutive_failures=2)
    apply(status, False, failure_threshold=3, recovery_threshold=2)
    assert status == HealthStatus(HEALTHY, consecutive_failures=2)
