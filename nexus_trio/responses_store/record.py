"""One stored response, and the ids the gateway gives responses
(docs/responses-api.md#conversations).

A :class:`StoredResponse` is immutable and holds JSON bytes, not objects: its size is exact
for the bounds, sharing it between memory, the writer and readers needs no copy, and every
reader decodes its own history.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

#: ``resp_`` and 32 lower-case hex digits (a random UUID4): the only ids the gateway makes, so
#: the only ones it looks up; nothing else is ever read from the store or echoed.
_RESPONSE_ID = re.compile(r"resp_[0-9a-f]{32}")
_MESSAGES = msgspec.json.Decoder(list[dict[str, Any]])


def new_response_id() -> str:
    """A new response id (random: another key cannot guess one)."""
    return f"resp_{uuid.uuid4().hex}"


def is_response_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id :func:`new_response_id` makes."""
    return _RESPONSE_ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A stored response: what a later request continues and ``GET`` returns."""

    id: str
    #: The name of the key that created it; only that key finds it (docs/keys.md#roles).
    key: str
    model: str
    #: Unix seconds, as in the Response object; retention runs from it.
    created_at: int
    #: The conversation as chat messages (JSON): the history it continued, its input, its output.
    messages: bytes
    #: The Response object (JSON), as the client got it.
    response: bytes

    @property
    def size(self) -> int:
        """The bytes it holds, as the bounds count them."""
        return len(self.messages) + len(self.response)

    def history(self) -> list[dict[str, Any]]:
        """A fresh copy of the conversation's chat messages, for the next request to extend."""
        return _MESSAGES.decode(self.messages)
