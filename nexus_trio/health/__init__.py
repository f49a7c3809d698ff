"""Health checks (docs/routing.md#health-checks, docs/routing.md#capabilities): the pure state
machine, one probe, and the periodic loop."""

from nexus_trio.health.checker import HealthChecker
from nexus_trio.health.probe import ProbeResult, probe_backend
from nexus_trio.health.state import HealthStatus, apply

__all__ = ["HealthChecker", "HealthStatus", "ProbeResult", "apply", "probe_backend"]
