"""The inbound Anthropic Messages API: a client's ``/v1/messages`` request translated to chat
completions for any OpenAI-compatible backend, and the answer, the stream and the errors
translated back (docs/messages-api.md).

Modules, each pure and synchronous (bytes in, bytes out):

- :mod:`.shapes` — the view of a Messages request;
- :mod:`.request` — a Messages body → a chat-completions body (:func:`chat_request`);
  :mod:`.tools` its ``tools`` and ``tool_choice``;
- :mod:`.text` — what ``count_tokens`` counts: the text for a backend's tokenizer and the
  character estimate;
- :mod:`.answers` — the chat-completions answer views and the Messages shapes they become;
- :mod:`.response` — a ``chat.completion`` → a Messages response (:func:`message_response`);
- :mod:`.stream` — ``chat.completion.chunk`` s → Messages stream events
  (:class:`MessagesStream`);
- :mod:`.errors` — the Anthropic error envelope, for the gateway's errors and a backend's;
- :mod:`.native_only` — a request holding what only an ``anthropic`` backend takes, made
  routable (:func:`translatable`).

It never touches sockets, routing, keys or accounting, and does not pass ``/v1/messages``
through to ``anthropic`` backends (:mod:`nexus_trio.dialects.anthropic.native` does): the
request path calls it around a chat-completions exchange, and the outbound translation
(:mod:`nexus_trio.dialects.anthropic`) is the other direction.
"""

from nexus_trio.dialects.messages.errors import error_body, error_from_chat
from nexus_trio.dialects.messages.native_only import translatable
from nexus_trio.dialects.messages.request import chat_request
from nexus_trio.dialects.messages.response import message_response
from nexus_trio.dialects.messages.stream import MessagesStream
from nexus_trio.dialects.messages.text import chat_text_for_tokenizer, count_tokens_estimate

__all__ = [
    "MessagesStream",
    "chat_request",
    "chat_text_for_tokenizer",
    "count_tokens_estimate",
    "error_body",
    "error_from_chat",
    "message_response",
    "translatable",
]
