"""``[responses]``: the Responses API's stored responses — whether responses are kept, for how
long, and how much of them (docs/responses-api.md#conversations). Part of the configuration
schema; import it from ``nexus_trio.config``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from nexus_trio.config.decoding import InvalidKey
from nexus_trio.config.values import AtLeastOne, Seconds

#: 30 days: how long OpenAI keeps a stored response by default.
DEFAULT_RETENTION_SECONDS = 30 * 24 * 3600.0
#: The largest conversation one stored response may hold: SQLite's blobs end at 1 GB, and a
#: conversation a client could not send back whole is of no use to keep.
CONVERSATION_BYTES_LIMIT = 256 * 1024 * 1024


class ResponsesConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[responses]`` (docs/responses-api.md#conversations): every key applies on reload."""

    #: false: no new response is stored, whatever a request asks (those stored before stay).
    store: bool = True
    #: A stored response is forgotten this long after it was created.
    retention_seconds: Seconds = DEFAULT_RETENTION_SECONDS
    #: The most responses kept; past it (or ``max_total_bytes``) the oldest go first.
    max_stored: AtLeastOne = 100_000
    #: A response whose conversation (messages and Response object) is larger is not stored.
    max_conversation_bytes: Annotated[int, msgspec.Meta(ge=1, le=CONVERSATION_BYTES_LIMIT)] = (
        16 * 1024 * 1024
    )
    #: The most bytes every stored response together may hold.
    max_total_bytes: AtLeastOne = 1024 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_conversation_bytes > self.max_total_bytes:
            raise InvalidKey(
                "max_conversation_bytes",
                f"max_conversation_bytes ({self.max_conversation_bytes}) must not exceed "
                f"max_total_bytes ({self.max_total_bytes})",
            )
