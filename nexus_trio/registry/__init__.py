"""The in-memory registry of configured backends (docs/routing.md#backends): synchronous.

What it owns: each backend's configuration, the models it serves, its capabilities (known yes,
known no or unknown: :mod:`~nexus_trio.registry.capabilities`), which models are loaded
(:mod:`~nexus_trio.registry.residency`), its health and its live
counters (:mod:`~nexus_trio.registry.backend`), and the list kept across reloads
(:mod:`~nexus_trio.registry.registry`). It never probes (the health package writes it) and never
routes (the routing package reads it).
"""

from nexus_trio.registry.backend import Backend, BackendCounters, HealthState, ProbeRecord
from nexus_trio.registry.capabilities import (
    FLAGS,
    TYPE_CAPABILITIES,
    Capabilities,
    guess_capabilities,
)
from nexus_trio.registry.registry import Registry
from nexus_trio.registry.residency import ModelResidency, Residency

__all__ = [
    "FLAGS",
    "TYPE_CAPABILITIES",
    "Backend",
    "BackendCounters",
    "Capabilities",
    "HealthState",
    "ModelResidency",
    "ProbeRecord",
    "Registry",
    "Residency",
    "guess_capabilities",
]
