"""What a decoded request needs and weighs: the requirements routing checks
(docs/routing.md#request-analysis) and the input estimate spend reserves and charges
(docs/spend.md#estimates), both read from a :mod:`~nexus_trio.api.bodies` view.
"""

from __future__ import annotations

import re

import msgspec

from nexus_trio.api.bodies import (
    CompletionView,
    EmbeddingView,
    RequestView,
    too_deep,
)
from nexus_trio.routing import Requirements

_ANY_DECODER = msgspec.json.Decoder()


def requirements_of(view: RequestView) -> Requirements:
    """What routing needs to know about the request (docs/routing.md#request-analysis).

    Raises:
        InvalidJSON: ``prompt`` or ``input`` is nested too deeply to decode here.
    """
    try:
        return _requirements_of(view)
    except RecursionError as exc:
        raise too_deep() from exc


def _requirements_of(view: RequestView) -> Requirements:
    if isinstance(view, EmbeddingView):
        return Requirements(
            estimated_tokens=_raw_text_chars(view.input) // 4, needs_embeddings=True
        )
    if isinstance(view, CompletionView):
        return Requirements(estimated_tokens=_raw_text_chars(view.prompt) // 4)
    chars = 0
    vision = False
    for message in view.messages:
        content = message.content
        if isinstance(content, str):
            chars += len(content)
        elif content is not None:
            for part in content:
                if part.text:
                    chars += len(part.text)
                if part.type == "image_url":
                    vision = True
    response_type = view.response_format.type if view.response_format is not None else None
    return Requirements(
        estimated_tokens=chars // 4,
        needs_vision=vision,
        needs_tools=bool(view.tools),
        needs_json_mode=response_type in ("json_object", "json_schema"),
    )


def _raw_text_chars(raw: msgspec.Raw) -> int:
    """Characters of the strings in a ``prompt``/``input`` value (token ids count 0)."""
    if not raw:
        return 0
    value = _ANY_DECODER.decode(raw)
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(len(item) for item in value if isinstance(item, str))
    return 0


#: Bytes of the request body per token of the input estimate (docs/spend.md#estimates).
BYTES_PER_TOKEN = 4
#: Tokens an image part counts for in the input estimate, whatever its size: about what one
#: large image costs at OpenAI (1,105 for 2048 x 768) and Anthropic (about 1,600 at most).
IMAGE_TOKENS = 1500
#: How a ``prompt``/``input`` of token ids (or of lists of them) begins.
_TOKEN_IDS = re.compile(rb"[\[\s]*[-0-9]")


def input_estimate(view: RequestView, body_size: int) -> int:
    """The request's input in tokens, as reserved and as charged when no usage arrives
    (docs/spend.md#estimates): ``body_size`` (the bytes of the body the view was decoded from)
    / :data:`BYTES_PER_TOKEN` — every field counts, ``tools``, schemas and ``tool_calls``
    included — except that an image part counts :data:`IMAGE_TOKENS` instead of its bytes; at
    least one token per token id of a ``prompt`` or ``input`` of token ids. Decodes nothing:
    the view and the raw bytes are read as they are.
    """
    if isinstance(view, EmbeddingView):
        return max(body_size // BYTES_PER_TOKEN, _token_ids(view.input))
    if isinstance(view, CompletionView):
        return max(body_size // BYTES_PER_TOKEN, _token_ids(view.prompt))
    images = 0
    image_bytes = 0
    for message in view.messages:
        content = message.content
        if isinstance(content, list):
            for part in content:
                if part.type == "image_url":
                    images += 1
                    image_bytes += len(part.image_url)
    return (body_size - image_bytes) // BYTES_PER_TOKEN + images * IMAGE_TOKENS


def _token_ids(raw: msgspec.Raw) -> int:
    """The token ids in a ``prompt``/``input`` of token ids or of lists of them — its commas
    plus one, counted on the raw bytes — else 0 (text: the body's size counts it)."""
    if not raw or _TOKEN_IDS.match(raw) is None:
        return 0
    return bytes(raw).count(b",") + 1
