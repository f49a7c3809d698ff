"""A translated client-API request's ``max_tokens`` fitted to the backend's known context
(docs/messages-api.md#requests).

Claude Code asks for ``max_tokens: 32000`` whatever the model; a backend with a smaller context
refuses such a request (vLLM: prompt plus ``max_tokens`` over the context length) or silently
stops at the context's end (llama.cpp, Ollama). Where the registry knows the served model's
context length (declared, or read from the server), a translated request's ``max_tokens``
becomes at most that length less the input estimate (the body's bytes / 4, as
docs/spend.md#estimates counts it); when nothing is left, or the length is unknown, the body
is sent as it is and the backend decides.
"""

from __future__ import annotations

import msgspec

__all__ = ["fitted_max_tokens"]

_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_COUNT = msgspec.json.Decoder(int | float | None)
_ENCODER = msgspec.json.Encoder()
#: Bytes of a request body per input token of the estimate (docs/spend.md#estimates).
BYTES_PER_TOKEN = 4


def fitted_max_tokens(body: bytes, context_length: int | None) -> bytes:
    """``body`` (a chat request, validated) with ``max_tokens`` at most what ``context_length``
    leaves after the input estimate; ``body`` itself when it fits or nothing is known."""
    if context_length is None:
        return body
    room = context_length - len(body) // BYTES_PER_TOKEN
    if room < 1:
        return body
    top = _TOP.decode(body)
    raw = top.get("max_tokens")
    if raw is None:
        return body
    requested = _COUNT.decode(raw)
    if requested is None or requested <= room:
        return body
    top["max_tokens"] = msgspec.Raw(_ENCODER.encode(room))
    return _ENCODER.encode(top)
