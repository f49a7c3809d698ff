"""``POST /v1/messages/count_tokens`` (docs/messages-api.md#counting-tokens): how many input
tokens a Messages request holds, without generating anything.

A proxy route: its body limits, admission (in flight, the key's concurrency and rate limits)
and accounting are the other proxy routes'. The request is checked as the Messages route checks
it (and the key must be allowed its model). The count comes from the tokenizer of a healthy
restricted-zone backend serving the model that has one — a llama.cpp server's or vLLM's
``POST /tokenize``, tried in priority order, each within :data:`TOKENIZE_SECONDS` — else it is
the gateway's character estimate; the answer says which in ``X-Nexus-Token-Count``
(``tokenizer`` or ``estimate``). Errors are in Anthropic's envelope, like the Messages route's.
"""

from __future__ import annotations

import httpx
import msgspec
import trio

from nexus_trio import errors
from nexus_trio.asgi.context import RequestContext
from nexus_trio.asgi.reply import Reply
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
    """``text``'s tokens by the first healthy backend of the restricted zone serving ``model``
    whose tokenizer answers, in priority order; None when none does. A backend of the open zone
    never sees a prompt only to count it: routing's privacy rules are not consulted here, so
    only the zone every key may use is asked."""
    serving = sorted(
        (
            b
            for b in registry
            if b.health is HealthState.HEALTHY
            and model in b.models
            and b.config.privacy_zone() == "restricted"
        ),
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


class TokenCounter:
    """Answers ``POST /v1/messages/count_tokens``, a proxy route: admitted, limited and
    accounted like the others before it runs (:class:`~nexus_trio.api.proxy.ProxyEndpoint`)."""

    def __init__(
        self, registry: Registry, http: httpx.AsyncClient, generations: Generations
    ) -> None:
        self._registry = registry
        self._http = http
        self._generations = generations

    async def answer(self, ctx: RequestContext, body: bytes) -> Reply:
        """The count of the Messages request ``body``.

        Raises:
            InvalidRequest: the body is not a valid Messages request (Anthropic's 400s).
            ModelNotAllowed: the key's allow-list does not name its model.
        """
        asked = str(messages.chat_request(body)["model"])
        key = ctx.key
        if key is not None and not key.allows_model(asked):
            raise errors.ModelNotAllowed(
                f"The key '{key.name}' may not use the model '{asked}'.", param="model"
            )
        ctx.requested_model = asked
        model = resolve_alias(self._generations.current.config.routing.aliases, asked)
        text = messages.chat_text_for_tokenizer(body)
        count = await tokenizer_count(self._registry, self._http, model, text)
        source = "tokenizer"
        if count is None:
            count, source = messages.count_tokens_estimate(body), "estimate"
        headers = {"content-type": "application/json", "x-nexus-token-count": source}
        return Reply.complete(200, headers, _ENCODER.encode({"input_tokens": count}))
