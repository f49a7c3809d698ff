"""nexus-trio: an OpenAI-compatible LLM gateway daemon on Trio.

Layers, lowest first; a module imports only from its own layer or below (CONTRIBUTING.md's
package map says what each package owns), with one exception being removed: the long-lived
``Services`` object of ``runtime.services`` is still handed whole to the front ends and the
background services.

1. ``errors``, ``config`` — the exception tree and the configuration's values.
2. ``metrics``, ``runtime.drain``, ``runtime.logs`` … — process-wide primitives.
3. ``registry``, ``quality``, ``routing``, ``keys``, ``spend``, ``fleet``, ``health``,
   ``upstream``, ``dialects`` — the gateway's capabilities, each usable alone.
4. ``asgi``, ``stats`` — what the front ends share.
5. ``api``, ``dashboard`` — the front ends.
6. ``runtime.supervisor``, ``runtime.front_end``, ``runtime.services`` — the wiring.
7. ``cli`` — the command line; ``simulator`` stands beside it, used only by it and the tests.
"""

__version__ = "0.1.0"
