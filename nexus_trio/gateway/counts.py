"""Request counts by final result, and how a reload went: the counters' value types."""

from __future__ import annotations

from dataclasses import dataclass, field

from nexus_trio.gateway.record import RequestRecord


@dataclass(slots=True)
class RequestCounts:
    """Finished client requests by final result (``requests`` of docs/api.md#stats)."""

    success: int = 0
    errors: int = 0
    client_errors: int = 0
    cancelled: int = 0
    #: Finished requests by the model that served them (models come from backends: bounded).
    by_model: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.success + self.errors + self.client_errors + self.cancelled

    def count(self, record: RequestRecord) -> None:
        """Count one finished request: cancelled, else a 4xx, else failed (a 5xx, no status or
        a truncated stream), else a success; and the model that served it, if any."""
        status = record.status
        if record.cancelled:
            self.cancelled += 1
        elif status is not None and 400 <= status < 500:
            self.client_errors += 1
        elif record.failed:
            self.errors += 1
        else:
            self.success += 1
        model = record.served_model
        if model is not None:
            self.by_model[model] = self.by_model.get(model, 0) + 1

    def copy(self) -> RequestCounts:
        return RequestCounts(
            self.success, self.errors, self.client_errors, self.cancelled, dict(self.by_model)
        )


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """How the last configuration reload (SIGHUP) went, for operators."""

    ok: bool
    #: ``time.time()`` of the reload (for display only).
    at_wall: float
    #: The error that kept the old configuration, or None.
    error: str | None = None
    #: Settings that changed but need a restart to apply.
    restart_required: tuple[str, ...] = ()
