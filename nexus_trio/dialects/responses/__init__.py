"""The OpenAI Responses API inbound: ``POST /v1/responses`` ↔ chat completions
(docs/responses-api.md).

What it owns, each pure and synchronous — bytes or dicts in, bytes or dicts out:

- :mod:`.request` — a Responses request body → a chat-completions request body, and the
  :class:`ResponsesRequest` the answer echoes; :mod:`.messages` (``input`` items → chat
  messages) and :mod:`.tools` (``tools``, ``tool_choice``; namespaces flattened, built-in tools
  left out) serve it; :mod:`.shapes` holds the view Structs both directions decode with;
- :mod:`.response` — a ``chat.completion`` → the Response object; a stored Response object →
  the chat messages it adds to a conversation (``previous_response_id``);
- :mod:`.stream` — ``chat.completion.chunk`` data → the Responses event stream, its end and its
  truncation (:mod:`.events`: the event shapes; :mod:`.output`: the Response object and its
  items, shared with :mod:`.response`);
- :mod:`.errors` — the gateway's errors in OpenAI's envelope;
- :mod:`.native_only` — a request holding what only a backend serving the Responses API
  takes, made routable (:func:`translatable`); :mod:`.native` reads such a backend's answers.

It never touches sockets, routes, storage, routing or retries: the request path calls it
around one chat-completions exchange, and it stores nothing (``store`` and
``previous_response_id`` are echoed; the caller keeps the conversation).
"""

from nexus_trio.dialects.responses.errors import error_body
from nexus_trio.dialects.responses.native_only import translatable
from nexus_trio.dialects.responses.request import ResponsesRequest, chat_request
from nexus_trio.dialects.responses.response import output_messages, response_object
from nexus_trio.dialects.responses.stream import ResponsesStream

__all__ = [
    "ResponsesRequest",
    "ResponsesStream",
    "chat_request",
    "error_body",
    "output_messages",
    "response_object",
    "translatable",
]
