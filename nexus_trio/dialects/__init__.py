"""Dialects: speaking a backend's own API behind the gateway's OpenAI API
(docs/proxying.md#request-body, docs/proxying.md#headers).

What it owns: the one interface every dialect implements (:mod:`~nexus_trio.dialects.base`:
a :class:`~nexus_trio.dialects.base.Dialect` prepares one attempt's
:class:`~nexus_trio.dialects.base.Exchange` — path, body, headers — and turns its answer back),
the pass-through of OpenAI-compatible backends (:mod:`~nexus_trio.dialects.passthrough`) and
Anthropic's Messages API (:mod:`nexus_trio.dialects.anthropic`), chosen once per attempt by
:func:`dialect_for`; and the inbound dialects, the client APIs translated to chat completions
and back (:mod:`nexus_trio.dialects.messages`, :mod:`nexus_trio.dialects.responses`). A backend
dialect that speaks a client's API natively is handed the client's own request
(:class:`~nexus_trio.dialects.base.ClientBody`) and relays its answer as it is, after
:mod:`~nexus_trio.dialects.reach` has left out what the backend does not allow it to reach.
A chat body may be fitted to its backend on the way: system messages merged for a template
that takes one (:mod:`~nexus_trio.dialects.system_first`), a translated request's
``max_tokens`` fitted to a known context (:mod:`~nexus_trio.dialects.context_fit`).
Translation is pure and synchronous — bytes in, bytes out — and unit-tested without an event loop.

It never touches sockets, timeouts, retries, routing or quality tracking: the attempt path
(:mod:`nexus_trio.api.attempt`) calls it around one upstream exchange, and the stream relay
applies the same deadlines and endings to a translated stream as to any other.
"""

from nexus_trio.dialects.anthropic import Anthropic
from nexus_trio.dialects.base import Dialect, Exchange
from nexus_trio.dialects.passthrough import PassThrough

__all__ = ["Dialect", "Exchange", "dialect_for"]

_PASS_THROUGH: Dialect = PassThrough()
_BY_TYPE: dict[str, Dialect] = {"anthropic": Anthropic()}


def dialect_for(backend_type: str) -> Dialect:
    """The dialect of a backend of ``backend_type`` (a ``[[backends]] type``)."""
    return _BY_TYPE.get(backend_type, _PASS_THROUGH)
