"""Which models a backend holds in memory now (docs/routing.md#residency): pure data.

A local server loads a model on first use and unloads it after an idle time or to make room
for another. Per (backend, model) the gateway knows one :class:`Residency`: ``loaded``,
``loading``, ``unloaded`` or ``unknown`` (nothing said so far, or a server that does not tell).
The residency package writes it from what servers report and the request path from what its
own requests imply; routing reads it. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Residency(enum.StrEnum):
    """Whether a model is in a backend's memory."""

    UNKNOWN = "unknown"
    LOADED = "loaded"
    LOADING = "loading"
    UNLOADED = "unloaded"

    @property
    def cold(self) -> bool:
        """A request now would wait for the model to load (``unloaded`` or ``loading``)."""
        return self is Residency.UNLOADED or self is Residency.LOADING


@dataclass(frozen=True, slots=True)
class ModelResidency:
    """What a backend told of one model, with the extras some servers give."""

    state: Residency
    #: Bytes of the model in GPU memory (Ollama ``size_vram``); None when not told.
    vram_bytes: int | None = None
    #: Wall time (Unix seconds) when the server will unload it if idle (Ollama
    #: ``expires_at``); None when not told.
    expires_at: float | None = None


UNKNOWN = ModelResidency(Residency.UNKNOWN)
