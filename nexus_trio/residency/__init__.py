"""Residency (docs/routing.md#residency): which models each backend holds in memory now.

What it owns: decoding what servers report about loaded models
(:mod:`~nexus_trio.residency.reports`: llama.cpp ``/v1/models`` and ``/models/sse``, Ollama
``/api/ps``) and the background service that keeps each backend's residency in the registry
current and the ``warm_models`` loaded (:mod:`~nexus_trio.residency.watcher`), and loading and
unloading a model on request (:mod:`~nexus_trio.residency.lifecycle`). It never routes (the
scheduler reads the registry) and never serves a client.
"""

from nexus_trio.residency.lifecycle import CONTROLLED_TYPES, ModelControl
from nexus_trio.residency.watcher import WATCHED_TYPES, ResidencyWatcher

__all__ = ["CONTROLLED_TYPES", "WATCHED_TYPES", "ModelControl", "ResidencyWatcher"]
