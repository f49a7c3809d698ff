"""The client APIs besides chat completions: which proxy routes speak them, and the seam
between a route's API and the request path (docs/api.md#routes).

A request on ``/v1/messages`` (Anthropic's Messages API) or ``/v1/responses`` (OpenAI's
Responses API) is translated once, before routing, into a chat-completions request by its
inbound dialect (:mod:`nexus_trio.dialects.messages`, :mod:`nexus_trio.dialects.responses`);
from there the request path — routing, retries, budgets, attempts, accounting — is the one of
chat completions and never asks which API the client spoke. Only the answer goes back through
the dialect: a whole answer (:meth:`ClientRequest.reply`), a stream's events
(:meth:`ClientRequest.events`, handed to the committed stream) and every error, in the client
API's envelope (:meth:`ClientRequest.error_reply`). A Responses answer its request asks to
store is handed to the response store once it is whole: the reply built, or the stream ended
well (docs/responses-api.md#conversations); :mod:`nexus_trio.api.client_requests` builds the
requests, continuing a stored conversation.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from nexus_trio import errors
from nexus_trio.api.bodies import rewritten
from nexus_trio.asgi.reply import Reply, encode_headers, error_reply
from nexus_trio.dialects import messages, responses
from nexus_trio.keys import DEFAULT_KEY
from nexus_trio.responses_store import ResponseStore, StoredResponse, new_response_id
from nexus_trio.upstream.stream import ClientEvents

#: Where an inbound request is forwarded: the chat-completions route.
CHAT_PATH = "/v1/chat/completions"
_JSON = {"content-type": "application/json"}


class ClientRequest(Protocol):
    """One request in a client API, translated to chat completions."""

    #: The chat-completions request body forwarded.
    body: bytes

    def reply(self, reply: Reply) -> Reply:
        """The client's answer for a whole chat-completions answer (2xx or an error)."""
        ...

    def events(self) -> ClientEvents:
        """The translator of this request's committed stream."""
        ...

    def error_reply(self, error: errors.APIError) -> Reply:
        """The client's answer for one of the gateway's errors."""
        ...


def _chat_body(chat: dict[str, Any]) -> bytes:
    """The chat body forwarded; a stream always reports its usage (the dialect reads it)."""
    if chat.get("stream"):
        chat["stream_options"] = {"include_usage": True}
    return msgspec.json.encode(chat)


def _json_reply(status: int, body: bytes, headers: dict[str, str] | None = None) -> Reply:
    return Reply.complete(status, {**(headers or {}), **_JSON}, body)


class _AnthropicError(msgspec.Struct):
    type: str


def _is_anthropic_error(body: bytes) -> bool:
    """Whether ``body`` is in Anthropic's error envelope already."""
    try:
        return msgspec.json.decode(body, type=_AnthropicError).type == "error"
    except (msgspec.DecodeError, RecursionError):
        return False


def _upstream_headers(reply: Reply) -> dict[str, str]:
    """The headers of a whole answer but its length and type, which the new body sets."""
    skip = {b"content-length", b"content-type"}
    return {n.decode("latin-1"): v.decode("latin-1") for n, v in reply.headers if n not in skip}


def _with_model(body: bytes, model: str) -> bytes:
    """``body`` (a JSON object, validated already) asking for ``model``; every other value
    byte-identical (only the top level is decoded)."""
    return rewritten(body, model=model, include_usage=False)


def _model_of(chat: dict[str, Any]) -> str:
    """The model a translated request asks for.

    Raises:
        InvalidValue: none, or not a non-empty string.
    """
    model = chat.get("model")
    if not isinstance(model, str) or not model:
        raise errors.InvalidValue("'model' must be a non-empty string.", param="model")
    return model


class MessagesRequest:
    """A ``POST /v1/messages`` request (docs/messages-api.md)."""

    native_path = "/v1/messages"

    def __init__(self, body: bytes) -> None:
        #: Why a backend that translates cannot serve this request (None: it can).
        self.refusal: errors.Untranslatable | None = None
        try:
            chat = messages.chat_request(body)
        except errors.Untranslatable as refusal:  # routed as its translatable part
            chat = messages.chat_request(messages.translatable(body, refusal))
            self.refusal = refusal
        self.model = _model_of(chat)
        self.body = _chat_body(chat)
        self._client_body = body

    def native_body(self, model: str) -> bytes:
        return _with_model(self._client_body, model)

    def reply(self, reply: Reply) -> Reply:
        if 200 <= reply.status < 300:
            body = messages.message_response(reply.body, model=self.model)
            return _json_reply(reply.status, body, _upstream_headers(reply))
        status, body = messages.error_from_chat(reply.status, reply.body)
        return _json_reply(status, body, _upstream_headers(reply))

    def events(self) -> ClientEvents:
        return messages.MessagesStream(model=self.model, message_id=f"msg_{uuid.uuid4().hex}")

    @staticmethod
    def error_reply(error: errors.APIError) -> Reply:
        if isinstance(error, errors.UpstreamStatusError):
            if _is_anthropic_error(error.body):  # from a native exchange: as it is
                return _json_reply(error.upstream_status, error.body)
            status, body = messages.error_from_chat(error.upstream_status, error.body)
            return _json_reply(status, body)
        status, body = messages.error_body(error.status, error.code, error.message)
        reply = _json_reply(status, body)
        reply.headers += encode_headers(error.headers)
        return reply


class ResponsesRequest:
    """A ``POST /v1/responses`` request (docs/responses-api.md), built by :class:`ClientAPIs`."""

    native_path = "/v1/responses"

    def native_body(self, model: str) -> bytes:
        return _with_model(self._client_body, model)

    def __init__(
        self, body: bytes, *, store: ResponseStore | None = None, key: str = DEFAULT_KEY
    ) -> None:
        """Translate ``body``. ``store``: where the answer is kept, under ``key``, when the
        request asks for it; None: nothing is kept, and the answer says ``store: false``. A
        request naming a ``previous_response_id`` is sent only after :meth:`continue_from`."""
        self._client_body = body
        self._store = store
        self._key = key
        self.response_id = new_response_id()
        self.created_at = int(time.time())
        self._translate(None)

    def continue_from(self, history: list[dict[str, Any]]) -> None:
        """Translate again with ``history``, the conversation the ``previous_response_id``
        names, before this request's input (docs/responses-api.md#conversations). The request
        is then translated for every backend, one that serves the Responses API too
        (docs/responses-api.md#native-backends): no backend knows the gateway's ids, so the
        client's body, which names one, has no native form."""
        if self.refusal is not None:
            raise self.refusal
        self._translate(history)
        self.native_path = ""

    def _translate(self, history: list[dict[str, Any]] | None) -> None:
        #: Why a backend that translates cannot serve this request (None: it can).
        self.refusal: errors.Untranslatable | None = None
        body = self._client_body
        try:
            chat, request = responses.chat_request(body, history=history)
        except errors.Untranslatable as refusal:  # routed as its translatable part
            body = responses.translatable(body, refusal)
            chat, request = responses.chat_request(body, history=history)
            self.refusal = refusal
        if request.store and self._store is None:
            request = dataclasses.replace(request, store=False)
        self.request = request
        #: What a later ``previous_response_id`` continues, but this answer's output.
        self._conversation = [*(history or ()), *request.input_messages]
        self.model = _model_of(chat)
        self.body = _chat_body(chat)

    def reply(self, reply: Reply) -> Reply:
        if not 200 <= reply.status < 300:
            return reply  # the upstream's error, in OpenAI's envelope already
        body = responses.response_object(
            reply.body,
            request=self.request,
            model=self.model,
            response_id=self.response_id,
            created_at=self.created_at,
        )
        self._keep(body)
        return _json_reply(reply.status, body, _upstream_headers(reply))

    def events(self) -> ClientEvents:
        stream = responses.ResponsesStream(
            request=self.request,
            model=self.model,
            response_id=self.response_id,
            created_at=self.created_at,
        )
        return _KeptStream(stream, self._keep) if self.request.store else stream

    def _keep(self, response: bytes) -> None:
        """Store the finished Response object ``response`` with its conversation."""
        if self._store is None or not self.request.store:
            return
        messages = [*self._conversation, *responses.output_messages(response)]
        self._store.remember(
            StoredResponse(
                id=self.response_id,
                key=self._key,
                model=self.model,
                created_at=self.created_at,
                messages=msgspec.json.encode(messages),
                response=response,
            )
        )

    @staticmethod
    def error_reply(error: errors.APIError) -> Reply:
        """The chat routes' answer: the Responses API's errors are OpenAI's envelope."""
        return error_reply(error)


class _KeptStream:
    """A Responses stream whose final Response object is kept when the stream ends well: the
    relay calls :meth:`done` only then, and nothing follows it but ``[DONE]``."""

    def __init__(self, stream: responses.ResponsesStream, keep: Callable[[bytes], None]) -> None:
        self._stream = stream
        self._keep = keep

    def feed(self, data: str) -> bytes:
        return self._stream.feed(data)

    def done(self) -> bytes:
        events = self._stream.done()
        if self._stream.response is not None:
            self._keep(msgspec.json.encode(self._stream.response))
        return events

    def truncated(self, message: str) -> bytes:
        return self._stream.truncated(message)


#: The client APIs by route, each building its :class:`ClientRequest` from a request body.
CLIENT_APIS: dict[str, type[MessagesRequest] | type[ResponsesRequest]] = {
    "/v1/messages": MessagesRequest,
    "/v1/responses": ResponsesRequest,
}


#: The routes beside the proxy routes that speak a client API (its errors' envelope).
_SIBLING_ROUTES = {"/v1/messages/count_tokens": MessagesRequest}


def reply_for_error(path: str, error: errors.APIError) -> Reply:
    """The answer to ``error`` on ``path``, in the envelope of the API the route speaks."""
    api = CLIENT_APIS.get(path) or _SIBLING_ROUTES.get(path)
    return error_reply(error) if api is None else api.error_reply(error)
