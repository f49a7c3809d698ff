"""Routing decisions: what a Reject tells the client (docs/proxying.md#when-nothing-can-serve)."""

from __future__ import annotations

import pytest

from nexus_trio.routing import Reject, Rejection, RejectionReason

R = RejectionReason


def rejection(
    reason: RejectionReason, retry_after: float | None = None, backend: str = "gpu-a"
) -> Rejection:
    return Rejection(backend, "health", reason, "detail", retry_after)


def reject(*rejections: Rejection) -> Reject:
    return Reject("llama3:70b", rejections, model_known=True)


def test_message_matches_the_spec_example() -> None:
    decision = reject(
        rejection(R.UNHEALTHY, 30.0, "gpu-a"),
        Rejection("gpu-b", "quality", R.HIGH_ERROR_RATE, "error rate 62% > 50% over 1h", 12.0),
    )
    assert decision.message() == (
        "No backend can serve 'llama3:70b' now: 2 excluded (1 unhealthy, 1 high_error_rate)"
    )


def test_message_groups_reasons_in_order_of_first_appearance() -> None:
    decision = reject(
        rejection(R.RATE_LIMITED, 5.0),
        rejection(R.UNHEALTHY, 30.0),
        rejection(R.RATE_LIMITED, 2.0),
    )
    assert decision.message().endswith(": 3 excluded (2 rate_limited, 1 unhealthy)")
    assert decision.reason_codes() == ["rate_limited", "unhealthy"]


def test_message_when_every_candidate_was_already_tried() -> None:
    assert reject().message() == (
        "No backend can serve 'llama3:70b' now: every candidate was already tried."
    )


@pytest.mark.parametrize(
    ("waits", "expected"),
    [
        ((30.0, 2.3), 3),
        ((30.0, 0.2), 1),
        ((0.0,), 1),
        ((7.0,), 7),
    ],
)
def test_retry_after_is_the_earliest_recovery_and_at_least_one(
    waits: tuple[float, ...], expected: int
) -> None:
    decision = reject(rejection(R.PRIVACY_ZONE), *(rejection(R.RATE_LIMITED, w) for w in waits))
    assert not decision.all_permanent
    assert decision.retry_after_seconds() == expected


def test_all_permanent_rejections_have_no_retry_after() -> None:
    decision = reject(
        rejection(R.MISSING_CAPABILITY),
        rejection(R.CONTEXT_TOO_LONG),
        rejection(R.PRIVACY_ZONE),
        rejection(R.TIER_TOO_LOW),
    )
    assert decision.all_permanent
    assert decision.retry_after_seconds() is None


def test_unknown_recovery_time_and_no_rejections_retry_after_one_second() -> None:
    assert reject(rejection(R.HIGH_ERROR_RATE)).retry_after_seconds() == 1
    assert not reject().all_permanent
    assert reject().retry_after_seconds() == 1


def test_rejection_renders_the_envelope_entry_without_internal_fields() -> None:
    entry = Rejection("gpu-b", "quality", R.CONSECUTIVE_FAILURES, "5 failures in a row", 30.0)
    assert entry.as_dict() == {
        "backend": "gpu-b",
        "reconciler": "quality",
        "reason": "consecutive_failures",
        "detail": "5 failures in a row",
    }
    assert not entry.permanent
