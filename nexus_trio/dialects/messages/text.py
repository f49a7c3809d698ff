"""The text of a Messages request a tokenizer counts, and the character estimate
(docs/messages-api.md#counting-tokens).

Both read the chat-completions request the Messages request becomes (:mod:`.request`), so
they count what a backend is sent: system and message text, tool calls' names and arguments,
tool results, and each function tool as its JSON text; images and dropped blocks
(``thinking``, server tools) are not counted.
"""

from __future__ import annotations

from typing import Any

import msgspec

from nexus_trio.dialects.messages.request import JOINER, chat_request

__all__ = ["chat_text_for_tokenizer", "count_tokens_estimate"]

#: Characters per token of the estimate.
CHARS_PER_TOKEN = 4
_ENCODER = msgspec.json.Encoder()


def chat_text_for_tokenizer(body: bytes) -> str:
    """The text a backend's ``/tokenize`` should count for a Messages or count_tokens body,
    its pieces joined with a blank line.

    Raises:
        InvalidValue, InvalidJSON: as :func:`~nexus_trio.dialects.messages.request.chat_request`.
    """
    return JOINER.join(piece for piece in _pieces(chat_request(body)) if piece)


def count_tokens_estimate(body: bytes) -> int:
    """The characters of :func:`chat_text_for_tokenizer` divided by 4, rounded up: the
    count when the backend has no tokenizer."""
    return -(-len(chat_text_for_tokenizer(body)) // CHARS_PER_TOKEN)


def _pieces(chat: dict[str, Any]) -> list[str]:
    pieces: list[str] = []
    for message in chat["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            pieces.append(content)
        elif content:
            pieces += [part["text"] for part in content if part["type"] == "text"]
        for call in message.get("tool_calls", ()):
            pieces += [call["function"]["name"], call["function"]["arguments"]]
    pieces += [_ENCODER.encode(tool["function"]).decode() for tool in chat.get("tools", ())]
    return pieces
