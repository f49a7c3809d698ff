"""Wire formats of the simulated backend: the request view and the probe documents.

The sans-I/O half of the simulator, with :mod:`nexus_trio.simulator.completion`: the view it
decodes from inference requests, and the bytes it answers probes and errors with (OpenAI,
Ollama, llama.cpp). Nothing here does I/O or looks at the clock; the server owns timing and
failures. JSON goes through module-level msgspec codecs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import msgspec

CONTEXT_LENGTH = 8192
"""Context length ``/api/show`` reports for chat models."""

EMBEDDING_CONTEXT_LENGTH = 512
"""Context length ``/api/show`` reports for embedding models."""

EMBEDDING_DIMENSIONS = 8
"""Length of every simulated embedding vector."""

MODEL_CREATED = 1_700_000_000
"""Fixed ``created`` timestamp of every listed model, so model lists are byte-stable."""

INFERENCE_ROUTES = frozenset((b"/v1/chat/completions", b"/v1/completions", b"/v1/embeddings"))
"""Routes that generate (and may fail); everything else is a :func:`static_route`."""

PROBE_ROUTES = frozenset((b"/v1/models", b"/api/tags", b"/health", b"/api/show"))
"""Routes that describe the backend; they never fail."""

HEALTH_OK = b'{"status":"ok"}'
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
GARBAGE_JSON = b'<<garbage>> {"this is": not json'
"""A 200 ``application/json`` body that no JSON parser accepts."""

GARBAGE_SSE = b"<<garbage>> this is not a server-sent event"
"""A 200 ``text/event-stream`` body with no line end, so it never completes an SSE event."""

_VISION_MARKERS = ("llava", "vision", "-vl")
_encode = msgspec.json.Encoder().encode


class _StreamOptions(msgspec.Struct):
    include_usage: bool = False


class _Function(msgspec.Struct):
    name: str


class _Tool(msgspec.Struct):
    function: _Function


class _Message(msgspec.Struct):
    role: str = ""
    content: str | list[Any] | None = None


class InferenceRequest(msgspec.Struct):
    """The part of a chat, completion or embedding request the simulator looks at."""

    model: str
    stream: bool = False
    stream_options: _StreamOptions | None = None
    tools: list[_Tool] | None = None
    messages: list[_Message] | None = None
    prompt: str | list[Any] | None = None
    input: str | list[Any] | None = None
    encoding_format: str | None = None
    #: Ollama: how long the model stays loaded after this request.
    keep_alive: float | str | None = None

    @property
    def include_usage(self) -> bool:
        """Whether a stream should end with a usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def tool(self) -> str | None:
        """The function to call: the first tool's, if the request offers tools and its messages
        hold no tool result yet (no ``tool`` message). Once a result is there the answer is
        text, as a model answers from it, so an agent that runs the call ends its turn."""
        if not self.tools or any(message.role == "tool" for message in self.messages or ()):
            return None
        return self.tools[0].function.name

    @property
    def prompt_tokens(self) -> int:
        """Approximate prompt size: characters / 4 (a token id counts as one token), >= 1."""
        chars = _text_chars(self.prompt) + _text_chars(self.input)
        chars += sum(_text_chars(message.content) for message in self.messages or ())
        return max(1, chars // 4)

    @property
    def embedding_inputs(self) -> list[Any]:
        """The items to embed: each string, or the one token-id list, of ``input``."""
        if isinstance(self.input, str):
            return [self.input]
        if self.input and all(isinstance(item, int) for item in self.input):
            return [self.input]
        return list(self.input or ())


_decode_request = msgspec.json.Decoder(InferenceRequest).decode
_decode_show = msgspec.json.Decoder(dict[str, Any]).decode
_ENCODING_FORMATS = (None, "float", "base64")


def _text_chars(value: object) -> int:
    """Count prompt characters in a content/prompt/input value (a token id counts as 4)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int):
        return 4
    if isinstance(value, list):
        return sum(_text_chars(item) for item in value)
    if isinstance(value, dict):
        return _text_chars(value.get("text"))
    return 0


def openai_error(message: str, error_type: str, code: str) -> bytes:
    """Return an OpenAI error envelope."""
    return _encode({"error": {"message": message, "type": error_type, "param": None, "code": code}})


def model_list(owner: str, models: Iterable[str]) -> bytes:
    """Return an OpenAI ``GET /v1/models`` document listing ``models``."""
    data = [
        {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": owner}
        for model in models
    ]
    return _encode({"object": "list", "data": data})


def _details(*, embedding: bool) -> dict[str, Any]:
    family = "bert" if embedding else "llama"
    return {
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": "137M" if embedding else "8B",
        "quantization_level": "F16" if embedding else "Q4_K_M",
    }


def ollama_tags(models: Iterable[str], embedding_models: Iterable[str]) -> bytes:
    """Return an Ollama ``GET /api/tags`` document; embedding models have family ``bert``."""
    entries = [(model, False) for model in models] + [(m, True) for m in embedding_models]
    return _encode(
        {
            "models": [
                {
                    "name": name,
                    "model": name,
                    "modified_at": "2024-01-01T00:00:00Z",
                    "size": 274_302_450 if embedding else 4_920_753_328,
                    "digest": hashlib.sha256(name.encode()).hexdigest(),
                    "details": _details(embedding=embedding),
                }
                for name, embedding in entries
            ]
        }
    )


def static_route(
    method: bytes,
    path: bytes,
    body: bytes,
    *,
    owner: str,
    models: tuple[str, ...],
    embedding_models: tuple[str, ...],
) -> tuple[int, bytes]:
    """Answer any request but an inference ``POST``: probe documents, 404 or 405.

    Returns the status and the JSON body.
    """
    match method, path:
        case b"GET", b"/v1/models":
            return 200, model_list(owner, models + embedding_models)
        case b"GET", b"/api/tags":
            return 200, ollama_tags(models, embedding_models)
        case b"GET", b"/health":
            return 200, HEALTH_OK
        case b"POST", b"/api/show":
            return _show(body, models, embedding_models)
    if path in PROBE_ROUTES or path in INFERENCE_ROUTES:
        message = f"method {method.decode()} not allowed on {path.decode()}"
        return 405, openai_error(message, "invalid_request_error", "method_not_allowed")
    message = f"no route for {method.decode()} {path.decode()}"
    return 404, openai_error(message, "invalid_request_error", "not_found")


def parse_inference(
    body: bytes,
    *,
    embedding: bool,
    models: tuple[str, ...],
    embedding_models: tuple[str, ...],
) -> InferenceRequest | tuple[int, bytes]:
    """Decode an inference request, or return the error answer (status, body) it deserves.

    A body that does not decode is 400 ``invalid_json``; an unknown model is 404
    ``model_not_found``; a known model of the other kind (chat vs embedding) is 400
    ``model_not_supported``; embeddings of nothing, or in another ``encoding_format`` than
    ``float`` or ``base64``, are 400 ``invalid_value``.
    """
    try:
        request = _decode_request(body)
    except msgspec.DecodeError as exc:
        return 400, openai_error(str(exc), "invalid_request_error", "invalid_json")
    if request.model not in (embedding_models if embedding else models):
        if request.model in models or request.model in embedding_models:
            task = "embeddings" if embedding else "completions"
            message = f"model '{request.model}' does not support {task}"
            return 400, openai_error(message, "invalid_request_error", "model_not_supported")
        message = f"model '{request.model}' not found"
        return 404, openai_error(message, "invalid_request_error", "model_not_found")
    if embedding and not request.embedding_inputs:
        return 400, openai_error(
            "input must not be empty", "invalid_request_error", "invalid_value"
        )
    if embedding and request.encoding_format not in _ENCODING_FORMATS:
        message = f"encoding_format must be 'float' or 'base64', not {request.encoding_format!r}"
        return 400, openai_error(message, "invalid_request_error", "invalid_value")
    return request


def _show(
    body: bytes, models: tuple[str, ...], embedding_models: tuple[str, ...]
) -> tuple[int, bytes]:
    try:
        document = _decode_show(body)
    except msgspec.DecodeError as exc:
        return 400, _encode({"error": str(exc)})
    model = document.get("model") or document.get("name")
    if model in models or model in embedding_models:
        return 200, ollama_show(model, embedding=model in embedding_models)
    return 404, _encode({"error": f"model '{model}' not found"})


def ollama_show(model: str, *, embedding: bool) -> bytes:
    """Return an Ollama ``POST /api/show`` document for ``model``.

    Chat models report ``completion`` and ``tools`` (plus ``vision`` when the name says so,
    e.g. ``llava``) and an 8192-token context; embedding models report ``embedding``.
    """
    if embedding:
        capabilities = ["embedding"]
        model_info = {
            "general.architecture": "bert",
            "bert.context_length": EMBEDDING_CONTEXT_LENGTH,
        }
    else:
        capabilities = ["completion", "tools"]
        if any(marker in model for marker in _VISION_MARKERS):
            capabilities.append("vision")
        model_info = {"general.architecture": "llama", "llama.context_length": CONTEXT_LENGTH}
    return _encode(
        {
            "capabilities": capabilities,
            "model_info": model_info,
            "details": _details(embedding=embedding),
        }
    )
