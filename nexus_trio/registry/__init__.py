"""The in-memory registry of configured backends (sync)."""

from nexus_trio.registry.backend import Backend, BackendCounters, HealthState, ProbeRecord
from nexus_trio.registry.capabilities import (
    FLAGS,
    TYPE_CAPABILITIES,
    Capabilities,
    guess_capabilities,
)
from nexus_trio.registry.registry import Registry

__all__ = [
    "FLAGS",
    "TYPE_CAPABILITIES",
    "Backend",
    "BackendCounters",
    "Capabilities",
    "HealthState",
    "ProbeRecord",
    "Registry",
    "guess_capabilities",
]
