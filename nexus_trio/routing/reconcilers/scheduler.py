"""Scheduler: chooses one agent among the survivors (docs/routing.md#scheduler).

Agents whose backend is at capacity (``max_concurrent_requests`` reached) are never chosen but
stay candidates: when every survivor is at capacity the scheduler chooses nothing and the
pipeline answers :class:`~nexus_trio.routing.decision.Queue` (docs/routing.md#queue-and-overload).

A ``forced`` agent (a quality probe) that survived and has a free slot is chosen regardless of
the strategy, with the intent's ``route_reason``. Agents the intent marks ``unconfirmed`` (a
required capability nobody declared) are left to the strategy only when no confirmed agent is
available: known support ranks before a guess, whatever the scores. Agents marked
``last_resort`` (cloud backends past the budget's soft limit) are chosen only when no other
agent is available; when that set one aside the reason is ``budget_soft_limit``. Agents of known
residency rank by the loading a request would wait for (docs/routing.md#warm-preference): model
loaded, then loading, then a load on a backend holding no model, then a load evicting another
model; those below the best rank are set aside unless, under ``smart``, the best one's
score is below :data:`WARM_MUCH_WORSE` of theirs. The reason is ``warm`` when the chosen agent
has its model loaded. Agents of ``unknown`` residency are neither preferred nor set aside.
Otherwise the strategy chooses; its reason is ``only_candidate`` when one agent was available,
and an intent ``route_reason`` set without a forced agent (``quality_panic``) overrides it.
Strategies:

- ``smart`` — highest score, ties broken by lower ``priority`` then name (``best_score``);
- ``round_robin`` — per resolved model, the next available agent in configuration order;
- ``priority_only`` — lowest ``priority``, then name (``priority``);
- ``random`` — uniform, from an injectable :class:`random.Random` (``random``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from nexus_trio.config import RoutingWeights
from nexus_trio.quality import QualityStore, ttft_penalty_fraction
from nexus_trio.registry import Residency
from nexus_trio.routing.decision import Route
from nexus_trio.routing.intent import Agent, RoutingIntent

#: The load term's denominator for backends without ``max_concurrent_requests``.
DEFAULT_LOAD_LIMIT = 10
#: The TTFT (streaming) and per-output-token (non-streaming) latencies that score 0.
TTFT_ZERO_MS = 2000.0
MS_PER_TOKEN_ZERO = 200.0
#: A warm agent is "much worse" than a cold one when its ``smart`` score is below this share
#: of the best cold agent's score: the cold one is then not set aside.
WARM_MUCH_WORSE = 0.5

Choice = tuple[Agent, str]


class Scheduler:
    """Chooses the agent a request goes to, by the configured ``[routing] strategy``."""

    name = "scheduler"

    def __init__(
        self,
        strategy: str,
        weights: RoutingWeights,
        *,
        quality: QualityStore | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Build a scheduler.

        Args:
            strategy: ``smart``, ``round_robin``, ``priority_only`` or ``random``.
            weights: ``[routing.weights]`` of the ``smart`` score.
            quality: The store whose snapshot gives the TTFT penalty; None = no penalty.
            rng: The generator of ``random``; a fresh unseeded one when None.

        Raises:
            ValueError: ``strategy`` is not one of the four.
        """
        strategies: dict[str, Callable[[RoutingIntent, list[Agent]], Choice]] = {
            "smart": self._smart,
            "round_robin": self._round_robin,
            "priority_only": self._priority_only,
            "random": self._random,
        }
        if strategy not in strategies:
            raise ValueError(f"unknown routing strategy {strategy!r}")
        self._choose = strategies[strategy]
        self._weights = (weights.priority, weights.load, weights.latency)
        self._weight_sum = weights.priority + weights.load + weights.latency
        self._rng = rng if rng is not None else random.Random()
        self._quality = quality
        #: round_robin: per resolved model, the index of the next agent to choose.
        self._next_index: dict[str, int] = {}

    def reconcile(self, intent: RoutingIntent) -> None:
        available = [agent for agent in intent.candidates if not agent.backend.at_capacity()]
        if not available:
            return
        choices = available
        budget_reason: str | None = None
        if intent.last_resort:
            preferred = [agent for agent in available if agent.key not in intent.last_resort]
            if preferred and len(preferred) < len(available):
                choices = available = preferred
                budget_reason = "budget_soft_limit"
        if intent.unconfirmed:
            confirmed = [agent for agent in choices if agent.key not in intent.unconfirmed]
            choices = confirmed or choices
        forced = intent.forced
        if forced is not None and forced in choices:
            agent, reason = forced, intent.route_reason or "probe"
        else:
            by_residency = self._residency_choices(intent, choices)
            agent, reason = self._choose(intent, by_residency or choices)
            if len(available) == 1:
                reason = "only_candidate"
            if forced is None and intent.route_reason is not None:
                reason = intent.route_reason
            elif budget_reason is not None:
                reason = budget_reason
            elif by_residency is not None and _load_rank(agent) == 0:
                reason = "warm"
        intent.route = Route(agent, reason, intent.resolved_model)

    def _residency_choices(self, intent: RoutingIntent, choices: list[Agent]) -> list[Agent] | None:
        """``choices`` without the agents that would wait for more loading than the best ones
        (docs/routing.md#warm-preference); None to keep them all."""
        ranks = {agent: rank for agent in choices if (rank := _load_rank(agent)) is not None}
        best = min(ranks.values(), default=0)
        worse = [agent for agent, rank in ranks.items() if rank > best]
        if not worse:
            return None
        kept = [agent for agent in choices if agent not in worse]
        if self._choose == self._smart:
            stream = intent.request.stream
            best_kept = max(
                self.ttft_penalty(self.base_score(a, stream=stream), a)
                for a in kept
                if ranks.get(a) == best
            )
            best_worse = max(self.ttft_penalty(self.base_score(a, stream=stream), a) for a in worse)
            if best_kept < WARM_MUCH_WORSE * best_worse:
                return None
        return kept

    def base_score(self, agent: Agent, *, stream: bool) -> float:
        """The ``smart`` score of docs/routing.md#scheduler in [0, 100], before the TTFT penalty.

        P = 100 - clamp(priority, 0, 100); L = 100 - min(pending * 100 / limit, 100);
        T = 100 * clamp(1 - latency / zero, 0, 1) from the TTFT EWMA (streaming) or the
        per-output-token EWMA (non-streaming), 100 without data; the weighted mean of the three.
        """
        config = agent.backend.config
        counters = agent.backend.counters
        priority = 100.0 - min(max(config.priority, 0), 100)
        limit = config.max_concurrent_requests or DEFAULT_LOAD_LIMIT
        load = 100.0 - min(counters.pending * 100.0 / limit, 100.0)
        if stream:
            observed, zero = counters.ttft_ewma_ms, TTFT_ZERO_MS
        else:
            observed, zero = counters.ms_per_output_token_ewma, MS_PER_TOKEN_ZERO
        latency = 100.0 if observed is None else 100.0 * min(max(1.0 - observed / zero, 0.0), 1.0)
        wp, wl, wt = self._weights
        return (priority * wp + load * wl + latency * wt) / self._weight_sum

    def ttft_penalty(self, score: float, agent: Agent) -> float:
        """The score after the TTFT penalty of docs/quality.md#ttft-penalty, which only reorders.

        With T = ``quality.ttft_penalty_threshold_ms`` and A the agent's 1 h average TTFT in
        the last quality snapshot: ``score * (1 - min((A - T) / T, 1))`` when A > T > 0,
        else ``score``. A zeroed score still wins when it is the only one.
        """
        quality = self._quality
        if quality is None:
            return score
        threshold = quality.config.ttft_penalty_threshold_ms
        return score * (1.0 - ttft_penalty_fraction(quality.get(agent.key).avg_ttft_ms, threshold))

    def _smart(self, intent: RoutingIntent, available: list[Agent]) -> Choice:
        stream = intent.request.stream
        scores = intent.scores
        best = available[0]
        best_key: tuple[float, int, str] | None = None
        for agent in available:
            score = self.ttft_penalty(self.base_score(agent, stream=stream), agent)
            config = agent.backend.config
            scores[config.name, agent.model] = score
            key = (-score, config.priority, config.name)
            if best_key is None or key < best_key:
                best, best_key = agent, key
        return best, "best_score"

    def _round_robin(self, intent: RoutingIntent, available: list[Agent]) -> Choice:
        model = intent.resolved_model
        index = self._next_index.get(model, 0) % len(available)
        self._next_index[model] = (index + 1) % len(available)
        return available[index], "round_robin"

    def _priority_only(self, intent: RoutingIntent, available: list[Agent]) -> Choice:
        agent = min(available, key=lambda a: (a.backend.config.priority, a.backend.name))
        return agent, "priority"

    def _random(self, intent: RoutingIntent, available: list[Agent]) -> Choice:
        return self._rng.choice(available), "random"


def _load_rank(agent: Agent) -> int | None:
    """How much loading a request to ``agent`` waits for: 0 its model is loaded; 1 it is
    loading; 2 it must load on a backend holding no model; 3 it must load, evicting another;
    None when unknown."""
    residency = agent.backend.residency
    known = residency.get(agent.model)
    if known is None or known.state is Residency.UNKNOWN:
        return None
    if known.state is Residency.LOADED:
        return 0
    if known.state is Residency.LOADING:
        return 1
    busy = any(other.state is not Residency.UNLOADED for other in residency.values())
    return 3 if busy else 2
