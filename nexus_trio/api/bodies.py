"""Request views: decode only what routing needs, validate it, forward the rest untouched.

A proxy request body is decoded once into a small view Struct (docs/proxying.md#request-body).
Unknown fields are skipped by the decoder, never dropped from what is forwarded: the bytes sent
upstream are the client's bytes, except that ``model`` is replaced when an alias or fallback
resolved it, and that a stream to a priced backend asks for usage when the client did not
(``stream_options.include_usage``, docs/proxying.md#request-body). :func:`rewritten` decodes the
top level to ``dict[str, msgspec.Raw]``, replaces those keys and re-encodes, leaving every other
value byte-identical; it runs only when one of them must change.

JSON nested deeper than the decoders can follow makes them raise ``RecursionError`` (msgspec
and the stdlib alike stop at the interpreter's recursion limit). Every function that decodes
the body, here and in :mod:`nexus_trio.api.analysis`, turns it into 400 ``invalid_json``
(:func:`too_deep`): no scan of the body is added on the hot path, and no deep body ever
becomes a server error.
"""

from __future__ import annotations

import enum
import json
import math
import re
from typing import Any

import msgspec

from nexus_trio import errors


class RouteKind(enum.StrEnum):
    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"


class ContentPart(msgspec.Struct):
    type: str
    text: str | None = None
    #: Left out of the input estimate, which counts an image as :data:`IMAGE_TOKENS`.
    image_url: msgspec.Raw = msgspec.Raw()


class Message(msgspec.Struct):
    content: str | list[ContentPart] | None = None


class ResponseFormat(msgspec.Struct):
    type: str | None = None


class StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


class _Common(msgspec.Struct):
    model: str
    stream: bool = False
    #: OpenAI's end-user id, for the access log (any JSON: only a string is logged).
    user: object = None

    @property
    def asks_usage(self) -> bool:
        """Whether the client asked for the stream's usage chunk itself."""
        return False

    def output_allowance(self, default: int, context_length: int | None = None) -> int:
        """The most output tokens the request may generate (docs/spend.md#reservations), with
        ``default`` standing for a cap it does not set and each choice at most
        ``context_length`` (None = unknown); 0 for embeddings."""
        return 0


#: A JSON number the request may give where an integer is meant; anything else is a 400.
_Count = int | float | None
#: Counts above this are taken as this (JSON integers are unbounded; token counts are not).
_MAX_COUNT = 2**53
#: The most choices (``n``, ``best_of``) a request may ask for: OpenAI's own bound on ``n``.
MAX_CHOICES = 128


def _positive(value: _Count) -> int | None:
    """A count as a whole number, rounded up and at most ``_MAX_COUNT``; None when absent or
    not positive."""
    if value is None or not value > 0:
        return None
    return min(math.ceil(value), _MAX_COUNT)


class _Streaming(_Common):
    stream_options: StreamOptions | None = None
    max_tokens: _Count = None
    max_completion_tokens: _Count = None
    #: Choices generated (``best_of``: generated server-side, of which ``n`` are returned).
    n: _Count = None
    best_of: _Count = None

    @property
    def asks_usage(self) -> bool:
        options = self.stream_options
        return options is not None and bool(options.include_usage)

    def output_allowance(self, default: int, context_length: int | None = None) -> int:
        """The larger of ``max_tokens`` and ``max_completion_tokens`` (``default`` without a
        positive one), at most ``context_length`` when known, times the choices generated."""
        cap = max(_positive(self.max_tokens) or 0, _positive(self.max_completion_tokens) or 0)
        cap = cap or default
        if context_length is not None:
            cap = min(cap, context_length)
        return cap * max(_positive(self.n) or 1, _positive(self.best_of) or 1)

    def check_choices(self) -> None:
        """Refuse ``n`` or ``best_of`` above :data:`MAX_CHOICES`: each multiplies the output
        the request reserves (docs/proxying.md#request-body).

        Raises:
            InvalidValue: naming the field.
        """
        for name, value in (("n", self.n), ("best_of", self.best_of)):
            if value is not None and value > MAX_CHOICES:
                raise errors.InvalidValue(f"'{name}' must be at most {MAX_CHOICES}.", param=name)


class ChatView(_Streaming):
    messages: list[Message] = msgspec.field(default_factory=list)
    tools: list[msgspec.Raw] | None = None
    response_format: ResponseFormat | None = None


class CompletionView(_Streaming):
    #: ``msgspec.Raw`` cannot sit in a union: an empty Raw means the field was absent.
    prompt: msgspec.Raw = msgspec.Raw()


class EmbeddingView(_Common):
    input: msgspec.Raw = msgspec.Raw()


RequestView = ChatView | CompletionView | EmbeddingView

_DECODERS: dict[RouteKind, msgspec.json.Decoder[Any]] = {
    RouteKind.CHAT: msgspec.json.Decoder(ChatView),
    RouteKind.COMPLETIONS: msgspec.json.Decoder(CompletionView),
    RouteKind.EMBEDDINGS: msgspec.json.Decoder(EmbeddingView),
}
_ANY_DECODER = msgspec.json.Decoder()
_TOP_LEVEL_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw])
_PATH = re.compile(r" - at `\$\.?(.*)`$")


def _param_of(message: str) -> tuple[str, str | None]:
    """Split msgspec's "Expected ... - at `$.messages[0].content`" into text and param."""
    match = _PATH.search(message)
    if match is None:
        return message, None
    return message[: match.start()], match.group(1) or None


def _check_duplicate_keys(body: bytes) -> None:
    """Reject a second top-level ``model`` or ``stream`` (docs/proxying.md#request-body).

    msgspec keeps the last duplicate and a backend may keep the first, so the model we route
    on could differ from the one served. The exact check (stdlib ``json`` with a pairs hook)
    only runs when a cheap scan says a duplicate or an escaped key is possible.
    """
    if body.count(b'"model"') < 2 and body.count(b'"stream"') < 2 and b"\\u" not in body:
        return
    top: list[tuple[str, object]] = []

    def keep_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
        top[:] = pairs
        return dict(pairs)

    json.loads(body, object_pairs_hook=keep_pairs)
    names = [name for name, _ in top]
    for key in ("model", "stream"):
        if names.count(key) > 1:
            raise errors.DuplicateKey(f"The request body has more than one '{key}' key.", param=key)


def too_deep() -> errors.InvalidJSON:
    return errors.InvalidJSON(
        "The request body is nested too deeply (arrays and objects within each other) "
        "to be decoded."
    )


def decode_view(kind: RouteKind, body: bytes) -> RequestView:
    """Decode and validate a proxy request body (docs/proxying.md#request-body).

    Raises:
        InvalidJSON: the body is empty, not JSON, or nested too deeply to decode.
        InvalidValue: JSON of the wrong shape; ``param`` names the field.
        DuplicateKey: a second top-level ``model`` or ``stream``.
    """
    try:
        return _decode_view(kind, body)
    except RecursionError as exc:
        raise too_deep() from exc


def _decode_view(kind: RouteKind, body: bytes) -> RequestView:
    try:
        view: RequestView = _DECODERS[kind].decode(body)
    except msgspec.ValidationError as exc:
        _raise_for_shape(body, str(exc))
    except msgspec.DecodeError as exc:
        raise errors.InvalidJSON("The request body is not valid JSON.") from exc
    _check_duplicate_keys(body)
    if not view.model:
        raise errors.InvalidValue("'model' must be a non-empty string.", param="model")
    if isinstance(view, ChatView):
        if not view.messages:
            raise errors.InvalidValue("'messages' must be a non-empty list.", param="messages")
        view.check_choices()
    elif isinstance(view, CompletionView):
        _check_prompt(view.prompt)
        view.check_choices()
    else:
        _check_input(view.input)
    return view


def _raise_for_shape(body: bytes, message: str) -> None:
    try:
        top = _ANY_DECODER.decode(body)
    except msgspec.DecodeError as exc:
        raise errors.InvalidJSON("The request body is not valid JSON.") from exc
    if not isinstance(top, dict):
        raise errors.InvalidValue("The request body must be a JSON object.")
    if "model" not in top:
        raise errors.InvalidValue("'model' is required.", param="model")
    text, param = _param_of(message)
    raise errors.InvalidValue(f"Invalid request: {text}.", param=param)


def _check_prompt(raw: msgspec.Raw) -> None:
    if not raw:
        raise errors.InvalidValue("'prompt' is required.", param="prompt")
    prompt = _ANY_DECODER.decode(raw)
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return
        if all(isinstance(p, int) for p in prompt):
            return
        if all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompt):
            return
    raise errors.InvalidValue(
        "'prompt' must be a string, a list of strings, or token ids.", param="prompt"
    )


def _check_input(raw: msgspec.Raw) -> None:
    if not raw:
        raise errors.InvalidValue("'input' is required.", param="input")
    value = _ANY_DECODER.decode(raw)
    if not (isinstance(value, str | list) and value):
        raise errors.InvalidValue("'input' must be a non-empty string or list.", param="input")


def rewritten(body: bytes, *, model: str | None, include_usage: bool) -> bytes:
    """The client's body with ``model`` replaced (when not None) and, with ``include_usage``,
    ``stream_options.include_usage`` set to true (other stream options kept); every other value
    byte-identical.

    Raises:
        InvalidJSON: the body is nested too deeply to decode here.
    """
    try:
        top = _TOP_LEVEL_DECODER.decode(body)
        if model is not None:
            top["model"] = msgspec.Raw(msgspec.json.encode(model))
        if include_usage:
            options: dict[str, msgspec.Raw] = {}
            raw = top.get("stream_options")
            if raw is not None and bytes(raw) != b"null":
                options = _TOP_LEVEL_DECODER.decode(raw)
            options["include_usage"] = msgspec.Raw(b"true")
            top["stream_options"] = msgspec.Raw(msgspec.json.encode(options))
    except RecursionError as exc:
        raise too_deep() from exc
    return msgspec.json.encode(top)
