"""What servers report about the models they hold, decoded (docs/routing.md#residency).

Pure and synchronous: view Structs holding only the fields used, decoders built once.

- llama.cpp ``GET /v1/models``: a router (``--models-dir``, ``--models-preset``) gives each
  model a ``status.value`` (``loaded``, ``loading``, ``unloaded``, ``failed``); a one-model
  server gives none, and the model it lists is the one it has loaded.
- llama.cpp ``GET /models/sse`` (routers only): one ``data:`` event per change,
  ``{"model": ..., "event": "status_change", "data": {"status": ...}}``.
- Ollama ``GET /api/ps``: the models in memory, each with ``size_vram`` and ``expires_at``; a
  model it serves and does not list there is unloaded.

A ``failed`` load counts as ``unloaded``: the next request would start a new load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

import msgspec

from nexus_trio.registry import ModelResidency, Residency

_STATES = {
    "loaded": Residency.LOADED,
    "loading": Residency.LOADING,
    "unloaded": Residency.UNLOADED,
    "failed": Residency.UNLOADED,
}
#: More fractional digits than ``datetime`` reads (Ollama writes nanoseconds).
_EXTRA_DIGITS = re.compile(r"(\.\d{6})\d+")


class _Status(msgspec.Struct):
    value: str | None = None


class _Listed(msgspec.Struct):
    id: str
    status: _Status | None = None


class _ModelList(msgspec.Struct):
    data: list[_Listed]


class _Change(msgspec.Struct):
    status: str | None = None


class _Event(msgspec.Struct):
    model: str | None = None
    data: _Change | None = None


class _Running(msgspec.Struct):
    name: str
    size_vram: int | None = None
    expires_at: str | None = None


class _Ps(msgspec.Struct):
    models: list[_Running] | None = None


_MODEL_LIST = msgspec.json.Decoder(_ModelList)
_EVENT = msgspec.json.Decoder(_Event)
_PS = msgspec.json.Decoder(_Ps)


def llamacpp_models(body: bytes) -> tuple[dict[str, ModelResidency], bool]:
    """Residency of every model a llama.cpp ``/v1/models`` lists, and whether it is a router.

    Raises:
        msgspec.DecodeError: not a model list.
    """
    listing = _MODEL_LIST.decode(body)
    router = any(entry.status is not None for entry in listing.data)
    found: dict[str, ModelResidency] = {}
    for entry in listing.data:
        if not router:
            found[entry.id] = ModelResidency(Residency.LOADED)
        elif entry.status is not None and entry.status.value in _STATES:
            found[entry.id] = ModelResidency(_STATES[entry.status.value])
    return found, router


def llamacpp_event(data: str) -> tuple[str, ModelResidency] | None:
    """The model and its new residency from one ``/models/sse`` event; None if it says none."""
    try:
        event = _EVENT.decode(data)
    except msgspec.DecodeError:
        return None
    if event.model is None or event.data is None or event.data.status not in _STATES:
        return None
    return event.model, ModelResidency(_STATES[event.data.status])


def ollama_ps(body: bytes, served: Iterable[str]) -> dict[str, ModelResidency]:
    """Residency from Ollama's ``/api/ps``: what it lists is loaded, the rest of ``served``
    unloaded.

    Raises:
        msgspec.DecodeError: not a ``/api/ps`` document.
    """
    found = dict.fromkeys(served, ModelResidency(Residency.UNLOADED))
    for running in _PS.decode(body).models or ():
        found[running.name] = ModelResidency(
            Residency.LOADED, running.size_vram, _wall_time(running.expires_at)
        )
    return found


def _wall_time(stamp: str | None) -> float | None:
    """Unix seconds of an RFC 3339 time; None when absent or unreadable."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(_EXTRA_DIGITS.sub(r"\1", stamp)).timestamp()
    except ValueError:
        return None
