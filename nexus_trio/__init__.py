"""nexus-trio: an OpenAI-compatible LLM gateway daemon on Trio.

Layers, lowest first; a module imports only from its own layer or below (CONTRIBUTING.md's
package map says what each package owns; ``tests/unit/test_import_layers.py`` keeps it so).

1. ``errors``, ``config`` — the exception tree and the configuration's values.
2. ``drain``, ``state_files`` — the process-wide shutdown state; opening the SQLite files of
   ``[state] dir``.
3. ``registry``, ``quality``, ``routing``, ``keys``, ``spend``, ``fleet``, ``health``,
   ``residency``, ``upstream``, ``dialects``, ``responses_store``, ``key_store``, ``metrics``,
   ``tracing`` — the gateway's capabilities, each usable alone, the Prometheus instruments
   that export them and the OpenTelemetry spans of its requests.
4. ``gateway``, ``asgi``, ``stats`` — what the front ends share: the generation a reload
   swaps, the counters and their one statistics snapshot, the finished-request record, the
   ASGI primitives, the ``/v1/stats`` document.
5. ``api``, ``dashboard`` — the front ends.
6. ``runtime`` — the process: the composition root (``runtime.wiring``), the supervisor, the
   server, systemd, logging.
7. ``cli``, ``simulator`` — the command line, and the simulated backend only it and the tests
   use.
"""

__version__ = "0.1.0"
