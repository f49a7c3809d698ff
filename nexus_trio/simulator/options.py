"""What a simulated backend is told to do, and what it records of each request."""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_RECEIVED = 10_000
"""How many :class:`ReceivedRequest` records a backend keeps (the most recent)."""

PARTIAL_EVENTS = 3
"""Content events a ``reset-mid``/``hang-mid`` stream sends before it breaks."""


class FailMode(enum.StrEnum):
    """How a failing inference request fails."""

    HTTP_500 = "500"
    """Status 500 with an OpenAI error body."""
    HTTP_429 = "429"
    """Status 429 with an OpenAI error body and ``Retry-After``."""
    RESET = "reset"
    """No response: the connection is aborted with a TCP RST once the request is read."""
    HANG = "hang"
    """No response until the client goes away."""
    GARBAGE = "garbage"
    """Status 200 whose body is not JSON (not SSE when streaming), then a clean close."""
    RESET_MID = "reset-mid"
    """Status, headers and part of the body, then a TCP RST."""
    HANG_MID = "hang-mid"
    """Status, headers and part of the body, then nothing until the client goes away."""
    HTML_502 = "html-502"
    """Status 502 with an HTML page, as a reverse proxy in front of a dead server sends."""


@dataclass
class SimulatorOptions:
    """Behaviour of a simulated backend; mutable on purpose, read anew for every request."""

    host: str = "127.0.0.1"
    port: int = 0
    models: tuple[str, ...] = ("demo",)
    embedding_models: tuple[str, ...] = ()
    ttft_ms: float = 50.0
    tokens_per_second: float = 100.0
    completion_tokens: int = 20
    error_rate: float = 0.0
    fail_mode: FailMode = FailMode.HTTP_500
    retry_after_seconds: int = 1
    seed: int | None = None
    name: str = "simulator"
    #: Model memory (:mod:`~nexus_trio.simulator.memory`): a first use waits this long; 0 = every
    #: model always loaded.
    load_ms: float = 0.0
    #: Models held at once (0 = no limit); loading one more evicts the least recently used.
    max_loaded: int = 0
    #: How long a model stays loaded after its last use without a request ``keep_alive``.
    keep_alive_seconds: float = 300.0


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the simulator read it; ``path`` is the request target, query included."""

    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    at: float
    """``trio.current_time()`` when the whole request had been read."""
