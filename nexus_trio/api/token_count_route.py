"""``POST /v1/messages/count_tokens`` (docs/messages-api.md#counting-tokens): how many input
tokens a Messages request holds, without generating anything.

The request is checked as the Messages route checks it (and the key must be allowed its model).
The count comes from the tokenizer of a healthy backend serving the model that has one — a
llama.cpp server's or vLLM's ``POST /tokenize``, tried in priority order, each within
:data:`TOKENIZE_SECONDS` — else it is the gateway's character estimate; the answer says which
in ``X-Nexus-Token-Count`` (``tokenizer`` or ``estimate``). Errors are in Anthropic's
envelope, like the Messages route's.
"""

from __future__ import annotations

import httpx
import msgspec
import trio
from quart import Response, request
from quart_trio import QuartTrio

from nexus_trio import errors
from nexus_trio.asgi.context import RequestContext
from nexus_trio.dialects import messages
from nexus_trio.gateway.generation import Generations
from nexus_trio.health.probe import fetch
from nexus_trio.registry import Backend, HealthState, Registry
from nexus_trio.routing.reconcilers.analyzer import resolve_alias

COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
#: How long one backend's tokenizer may take before the next is tried (or the estimate used).
TOKENIZE_SECONDS = 5.0
_ENCODER = msgspec.json.Encoder()


class _Tokenized(msgspec.Struct):
    """llama.cpp answers ``tokens``; vLLM ``count`` (and ``tokens``)."""

    tokens: list[int] | None = None
    count: int | None = None


_TOKENIZED = msgspec.json.Decoder(_Tokenized)


def _tokenize_body(backend: Backend, model: str, text: str) -> bytes | None:
    """The ``/tokenize`` request of a backend type that has one, else None."""
    kind = backend.config.type
    if kind == "llamacpp":
        return _ENCODER.encode({"content": text})
    if kind == "vllm":
        return _ENCODER.encode({"model": model, "prompt": text})
    return None


async def tokenizer_count(
    registry: Registry, http: httpx.AsyncClient, model: str, text: str
) -> int | None:
    """``text``'s tokens by the first healthy backend serving ``model`` whose tokenizer answers,
    in priority order; None when none does."""
    serving = sorted(
        (b for b in registry if b.health is HealthState.HEALTHY and model in b.models),
        key=lambda b: b.config.priority,
    )
    for backend in serving:
        body = _tokenize_body(backend, model, text)
        if body is None:
            continue
        with trio.move_on_after(TOKENIZE_SECONDS):
            try:
                answer = _TOKENIZED.decode(await fetch(http, backend, "POST", "/tokenize", body))
            except (errors.UpstreamError, msgspec.DecodeError):
                continue
            if answer.count is not None:
                return answer.count
            if answer.tokens is not None:
                return len(answer.tokens)
    return None


def register_token_count_route(
    app: QuartTrio, registry: Registry, http: httpx.AsyncClient, generations: Generations
) -> None:
    """Add ``POST /v1/messages/count_tokens`` to ``app``."""

    @app.post(COUNT_TOKENS_PATH)
    async def count_tokens() -> Response:
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)
        asked = str(messages.chat_request(body)["model"])  # the Messages route's 400s
        ctx: RequestContext | None = request.scope.get("nexus.context")  # type: ignore[assignment]
        key = None if ctx is None else ctx.key
        if key is not None and not key.allows_model(asked):
            raise errors.ModelNotAllowed(
                f"The key '{key.name}' may not use the model '{asked}'.", param="model"
            )
        model = resolve_alias(generations.current.config.routing.aliases, asked)
        text = messages.chat_text_for_tokenizer(body)
        count = await tokenizer_count(registry, http, model, text)
        source = "tokenizer"
        if count is None:
            count, source = messages.count_tokens_estimate(body), "estimate"
        return Response(
            _ENCODER.encode({"input_tokens": count}),
            content_type="application/json",
            headers={"x-nexus-token-count": source},
        )
