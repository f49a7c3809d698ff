"""The simulated OpenAI/Ollama-compatible inference backend (``nexus-trio simulate``).

Used by ``nexus-trio simulate`` and ``demo``, the system tests, the benchmarks and failure
drills (docs/cli.md#simulate). It is a real HTTP/1.1 server written directly on trio streams
and h11, because drills need control below HTTP (TCP resets, hangs, truncated bodies) and
benchmarks need it fast.

What it owns: its listener and connections, the timing of its answers, the failures it is told
to inject, and the record of what it received. What it never touches: the gateway. Nothing in
``nexus_trio`` outside ``cli`` and ``demo`` imports it, and it imports nothing of the gateway,
so it behaves like any other server on the network.

Modules: :mod:`.options` (what it is told to do, what it records), :mod:`.server` (the server
and its failure modes), :mod:`.http` (one h11 exchange), :mod:`.payloads` (the request view,
probe documents, error envelopes), :mod:`.completion` (completions and embeddings) and
:mod:`.memory` (which models are loaded, Ollama's ``/api/ps`` and ``keep_alive``).

Theory of operation:

* :meth:`SimulatedBackend.run` binds a listener and serves each accepted connection in its own
  task (``trio.serve_listeners``). A connection owns one ``h11.Connection`` and loops
  read request → answer → ``start_next_cycle`` for keep-alive. Cancelling ``run`` closes the
  listener and every connection, so a stopped simulator looks like a dead backend.
* Probe routes (``/v1/models``, ``/api/tags``, ``/health``, ``/api/show``) answer at once and
  never fail: a sick backend still looks healthy to probes, like a real one.
* Inference routes (``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``) are
  answered inside a *watched exchange*: a sibling task reads the socket while the answer is
  produced, so a client that goes away is noticed at once (EOF or reset), recorded in
  :attr:`SimulatedBackend.disconnects`, and the answer is cancelled mid-sleep or mid-stream.
  Bytes a pipelining client sends meanwhile are fed to h11, never lost.
* Timing is relative to the moment the request was read: the first event of a stream is due at
  ``ttft_ms``, token ``i`` at ``ttft_ms + i / tokens_per_second`` (drift-free
  ``sleep_until``); a whole answer after ``ttft_ms + completion_tokens / tokens_per_second``.
  ``tokens_per_second <= 0`` means no pacing between tokens. A model that must be loaded first
  (``load_ms``) shifts all of it by the load.
* Each inference request fails with probability ``error_rate`` in ``fail_mode`` after it was
  validated (bad JSON → 400, unknown model → 404 are answered truthfully).
  :class:`SimulatorOptions` is read per request, so tests may change it while it runs.
"""

from nexus_trio.simulator.options import (
    PARTIAL_EVENTS,
    FailMode,
    ReceivedRequest,
    SimulatorOptions,
)
from nexus_trio.simulator.payloads import EMBEDDING_DIMENSIONS
from nexus_trio.simulator.server import SimulatedBackend

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "PARTIAL_EVENTS",
    "FailMode",
    "ReceivedRequest",
    "SimulatedBackend",
    "SimulatorOptions",
]
