"""Health checks (docs/routing.md#health-checks, docs/routing.md#capabilities): keeping the
registry current.

What it owns: the pure health state machine (:mod:`~nexus_trio.health.state`), one probe of one
backend (:mod:`~nexus_trio.health.probe`), decoding what servers declare about their models
(:mod:`~nexus_trio.health.declared`) and the periodic service that sweeps every backend
(:mod:`~nexus_trio.health.checker`). It never serves a client and never judges quality from
client traffic.
"""

from nexus_trio.health.checker import HealthChecker
from nexus_trio.health.probe import ProbeResult, probe_backend
from nexus_trio.health.state import HealthStatus, apply

__all__ = ["HealthChecker", "HealthStatus", "ProbeResult", "apply", "probe_backend"]
