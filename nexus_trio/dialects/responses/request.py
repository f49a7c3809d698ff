"""A Responses request → a chat-completions request (docs/responses-api.md#requests).

Theory of operation. The body is decoded once into a view (:class:`~.shapes.Request`): fields
with a chat equivalent are mapped, the fields the answer echoes are kept in a
:class:`ResponsesRequest`, and every other field (``include``, ``prompt_cache_key``,
``client_metadata``, ``truncation``, ``service_tier``…) is skipped by the decoder. The chat
messages are the instructions (one ``system`` message), then ``history``, then the ``input``
items (:mod:`.messages`); tools and ``tool_choice`` are mapped by :mod:`.tools`. What no backend
can do is refused with a 400 naming the field before anything is sent: ``background: true``,
a ``conversation`` or a stored ``prompt`` (server-side state the gateway does not hold), and
a ``tool_choice`` forcing a tool that is not a function — as
:class:`~nexus_trio.errors.Untranslatable`, which the caller defers until a backend that must
translate is chosen (:mod:`.native_only`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import msgspec

from nexus_trio import errors
from nexus_trio.dialects.responses.messages import chat_messages
from nexus_trio.dialects.responses.shapes import Reasoning, Request, TextConfig, invalid_at
from nexus_trio.dialects.responses.tools import chat_tool_choice, tool_set

__all__ = ["ResponsesRequest", "chat_request", "echoed"]

_DECODER = msgspec.json.Decoder(Request)
_ENCODER = msgspec.json.Encoder()


def _text_format() -> dict[str, Any]:
    return {"format": {"type": "text"}}


@dataclass(frozen=True, kw_only=True)
class ResponsesRequest:
    """What the translation keeps of a Responses request to build the answer objects.

    The echo fields the Response object carries, as plain JSON-able values: ``tools`` as the
    backend sees them (namespaces flattened, built-in tools left out), ``tool_choice`` and
    ``text`` as given (defaults ``"auto"`` and a ``text`` format). :attr:`tool_namespaces` maps
    each flattened name back to its namespace and name, for the answer's ``function_call``
    items. :attr:`input_messages` are the chat messages of this request's ``input`` — with
    ``history`` before them and the answer's :func:`~.response.output_messages` after them,
    they are the conversation a later ``previous_response_id`` continues (the instructions
    are not part of it: OpenAI does not carry them over to the next response).
    """

    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    parallel_tool_calls: bool = True
    text: dict[str, Any] = field(default_factory=_text_format)
    reasoning: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    store: bool = True
    previous_response_id: str | None = None
    tool_namespaces: dict[str, list[str]] = field(default_factory=dict)
    input_messages: list[dict[str, Any]] = field(default_factory=list)
    #: The echo fields a client may nest deeply (``tools``, ``tool_choice``, ``text``,
    #: ``reasoning``, ``metadata``) as JSON, encoded once at translation: a Response object
    #: embeds them as they are, so building one never recurses into them (a stream's events are
    #: encoded deep in the relay's stack, where a body nested near the decoder's limit would
    #: otherwise raise ``RecursionError``).
    echoed: dict[str, msgspec.Raw] = field(default_factory=dict)


#: The fields of :attr:`ResponsesRequest.echoed`.
ECHOED = ("tools", "tool_choice", "text", "reasoning", "metadata")


def echoed(request: ResponsesRequest) -> dict[str, msgspec.Raw]:
    """``request``'s :data:`ECHOED` fields as JSON (:attr:`ResponsesRequest.echoed`).

    Raises:
        RecursionError: nested too deeply to encode here.
    """
    return {name: msgspec.Raw(_ENCODER.encode(getattr(request, name))) for name in ECHOED}


def chat_request(
    body: bytes, *, history: list[dict[str, Any]] | None = None
) -> tuple[dict[str, Any], ResponsesRequest]:
    """The chat-completions request body (a dict; the caller encodes it) for a Responses
    request body, and what the answer needs.

    Args:
        body: The client's JSON body.
        history: The chat messages of the conversation so far, when the request names a
            ``previous_response_id`` the caller found: the stored ``input_messages`` and
            output messages of the earlier responses; placed after the instructions.

    Raises:
        InvalidJSON: the body is not JSON, or is nested too deeply to decode.
        InvalidValue: a field is malformed, or asks for what no backend can do; ``param``
            names it. Unknown fields and unknown tool and item types are never refused.
    """
    try:
        return _translate(body, history or [])
    except msgspec.ValidationError as exc:
        raise invalid_at("", exc) from exc
    except msgspec.DecodeError as exc:
        raise errors.InvalidJSON("The request body is not valid JSON.") from exc
    except RecursionError as exc:  # docs/proxying.md#request-body
        raise errors.InvalidJSON("The request body is nested too deeply to be decoded.") from exc


def _translate(
    body: bytes, history: list[dict[str, Any]]
) -> tuple[dict[str, Any], ResponsesRequest]:
    request = _DECODER.decode(body)
    _refuse_unsupported(request)
    tools = tool_set(request.tools)
    choice = chat_tool_choice(request.tool_choice, tools)
    input_messages = chat_messages(request.input, tools)
    messages = [*history, *input_messages]
    if request.instructions:
        messages.insert(0, {"role": "system", "content": request.instructions})
    if not messages:
        raise errors.InvalidValue("'input' needs at least one item.", param="input")
    chat: dict[str, Any] = {"messages": messages}
    options = (
        ("model", request.model),
        ("max_tokens", request.max_output_tokens),
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("user", request.user),
        ("response_format", _response_format(request.text)),
        ("reasoning_effort", _effort(request.reasoning)),
    )
    chat.update((key, value) for key, value in options if value is not None)
    if request.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    if tools.chat:
        chat["tools"] = tools.chat
        if choice is not None:
            chat["tool_choice"] = choice
        if request.parallel_tool_calls is not None:
            chat["parallel_tool_calls"] = request.parallel_tool_calls
    given_choice = request.tool_choice
    kept = ResponsesRequest(
        instructions=request.instructions,
        tools=tools.echo,
        tool_choice=msgspec.to_builtins(given_choice) if given_choice is not None else "auto",
        temperature=request.temperature,
        top_p=request.top_p,
        max_output_tokens=request.max_output_tokens,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        text=request.text if request.text is not None else _text_format(),
        reasoning=request.reasoning,
        metadata=request.metadata or {},
        store=request.store is not False,
        previous_response_id=request.previous_response_id,
        tool_namespaces=tools.namespaces,
        input_messages=input_messages,
    )
    return chat, dataclasses.replace(kept, echoed=echoed(kept))


def _refuse_unsupported(request: Request) -> None:
    for param, given, what in (
        ("background", request.background, "background responses are"),
        ("conversation", request.conversation is not None, "conversations are"),
        ("prompt", request.prompt is not None, "stored prompts are"),
    ):
        if given:
            raise errors.Untranslatable(
                f"'{param}': {what} not supported by this gateway.", param=param
            )


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """``text.format`` as the chat ``response_format`` (None: plain text)."""
    try:
        config = msgspec.convert(text or {}, TextConfig)
    except msgspec.ValidationError as exc:
        raise invalid_at("text", exc) from exc
    fmt = config.format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.type != "json_schema":
        raise errors.InvalidValue(
            f"'text.format.type' {fmt.type!r} is not valid.", param="text.format.type"
        )
    if fmt.name is None or fmt.schema is None:
        param = "text.format.name" if fmt.name is None else "text.format.schema"
        raise errors.InvalidValue(f"'{param}' is required for a JSON schema.", param=param)
    schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema}
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    if fmt.description is not None:
        schema["description"] = fmt.description
    return {"type": "json_schema", "json_schema": schema}


def _effort(reasoning: dict[str, Any] | None) -> str | None:
    """``reasoning.effort`` as the chat ``reasoning_effort``."""
    try:
        return msgspec.convert(reasoning or {}, Reasoning).effort
    except msgspec.ValidationError as exc:
        raise invalid_at("reasoning", exc) from exc
