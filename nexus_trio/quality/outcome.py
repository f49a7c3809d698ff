"""How one attempt ended (docs/quality.md#outcomes)."""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """The outcome recorded for one attempt.

    ``success`` and ``failure`` count in error rates; ``client_error`` (upstream 4xx other than
    408/429) and ``cancelled`` (client gone, gateway drained) do not.
    """

    SUCCESS = "success"
    FAILURE = "failure"
    CLIENT_ERROR = "client_error"
    CANCELLED = "cancelled"


def outcome_for_status(status: int) -> Outcome:
    """The outcome of an attempt that got an HTTP status (before its body is judged)."""
    if status < 400:
        return Outcome.SUCCESS
    if status in (408, 429) or status >= 500:
        return Outcome.FAILURE
    return Outcome.CLIENT_ERROR
