"""RequestAnalyzer: the model a request is for, and every agent that serves it
(docs/routing.md#request-analysis)."""

from __future__ import annotations

from collections.abc import Mapping

from nexus_trio.config.decoding import MAX_ALIAS_HOPS
from nexus_trio.registry import Registry
from nexus_trio.routing.intent import Agent, RejectionReason, RoutingIntent


def resolve_alias(aliases: Mapping[str, str], model: str) -> str:
    """Follow ``model`` through ``aliases``, at most :data:`MAX_ALIAS_HOPS` hops."""
    for _ in range(MAX_ALIAS_HOPS):
        target = aliases.get(model)
        if target is None:
            break
        model = target
    return model


class RequestAnalyzer:
    """Resolves aliases and fills the candidates: one agent per backend serving the model.

    The requirements themselves (estimated tokens, vision, tools, JSON mode) come computed by
    the request path, which has the decoded body; this reconciler only turns them into
    candidates. Backends the request already gave up on (``skip_backends``) and agents it
    already tried are left out without a rejection: they are not reasons the model cannot be
    served, only choices already spent. A model the request's key may not use (a fallback
    outside its allow-list) loses every agent with ``model_not_allowed`` and counts as unknown.
    An embeddings request drops the agents known not to embed and marks those nobody declared
    either way as unconfirmed.
    """

    name = "request_analyzer"

    def __init__(self, registry: Registry, aliases: Mapping[str, str]) -> None:
        """Read backends from ``registry`` (live) and aliases from ``[routing.aliases]``."""
        self._registry = registry
        self._aliases = aliases

    def resolve(self, model: str) -> str:
        """Follow ``model`` through the aliases, at most :data:`MAX_ALIAS_HOPS` hops."""
        return resolve_alias(self._aliases, model)

    def reconcile(self, intent: RoutingIntent) -> None:
        request = intent.request
        model = self.resolve(request.model)
        intent.resolved_model = model
        serving = self._registry.serving(model)
        if not serving:
            intent.model_known = False
            return
        spent = request.skip_backends
        if request.tried:
            spent = spent | {name for name, tried in request.tried if tried == model}
        intent.candidates = [
            Agent(backend, model) for backend in serving if backend.name not in spent
        ]
        if not request.model_allowed:
            for agent in list(intent.candidates):
                reason = RejectionReason.MODEL_NOT_ALLOWED
                intent.remove(agent, self.name, reason, "the request's key may not use this model")
            intent.model_known = False
            return
        if request.requirements.needs_embeddings:
            for agent in list(intent.candidates):
                embeds = agent.backend.capabilities(model).embeddings
                if embeds is False:
                    reason = RejectionReason.MISSING_CAPABILITY
                    intent.remove(agent, self.name, reason, "embeddings")
                elif embeds is None:
                    intent.unconfirmed.add(agent.key)
