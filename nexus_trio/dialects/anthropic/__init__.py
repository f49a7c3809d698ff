"""The ``anthropic`` backend type: OpenAI chat requests in, Anthropic Messages API out.

Modules, each pure and synchronous:

- :mod:`.shapes` — the request shapes of both APIs (view Structs);
- :mod:`.request` — an OpenAI ``/v1/chat/completions`` body → a ``POST /v1/messages`` body;
  what Anthropic cannot do is refused with a 400 naming the field, before anything is sent;
- :mod:`.response` — a Messages API response → an OpenAI ``chat.completion``;
- :mod:`.stream` — Messages API stream events → OpenAI ``chat.completion.chunk`` events;
- :mod:`.errors` — an Anthropic error (status and body) → the OpenAI error envelope;
- :mod:`.exchange` — the dialect (:class:`Anthropic`) and one attempt's exchange: path,
  headers and the above;
- :mod:`.native` — a Messages API request from a client relayed as it is (the native
  exchange), its answer only read through the translations above.
"""

from nexus_trio.dialects.anthropic.exchange import (
    ANTHROPIC_MAX_TOKENS,
    ANTHROPIC_VERSION,
    Anthropic,
)

__all__ = ["ANTHROPIC_MAX_TOKENS", "ANTHROPIC_VERSION", "Anthropic"]
