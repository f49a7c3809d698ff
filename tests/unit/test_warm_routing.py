"""The scheduler's warm preference (docs/routing.md#warm-preference): an agent whose model is
loaded ranks before one that must load it, unless it is full or much worse; ``unknown`` ranks
as before."""

from __future__ import annotations

import pytest

from nexus_trio.config import RoutingWeights
from nexus_trio.registry import Backend, ModelResidency, Residency
from nexus_trio.routing.reconcilers import Scheduler
from tests.unit.routing_inputs import MODEL, backend, intent


def resident(name: str, state: Residency, **fields: object) -> Backend:
    made = backend(name, **fields)
    made.residency[MODEL] = ModelResidency(state)
    return made


def route_of(scheduler: Scheduler, *backends: Backend) -> tuple[str, str]:
    routing_intent = intent(*backends)
    scheduler.reconcile(routing_intent)
    assert routing_intent.route is not None
    return routing_intent.route.agent.backend.name, routing_intent.route.reason


def smart() -> Scheduler:
    return Scheduler("smart", RoutingWeights())


@pytest.mark.parametrize("cold", [Residency.UNLOADED, Residency.LOADING])
def test_a_warm_agent_wins_over_a_better_scored_cold_one(cold: Residency) -> None:
    # "a" has the better priority, so it wins on score alone.
    first = resident("a", cold, priority=10)
    second = resident("b", Residency.LOADED, priority=50)
    assert route_of(smart(), first, second) == ("b", "warm")


def test_without_residency_the_score_decides_as_before() -> None:
    first, second = backend("a", priority=10), resident("b", Residency.LOADED, priority=50)
    assert route_of(smart(), first, second) == ("a", "best_score")
    both_unknown = backend("a", priority=10), backend("b", priority=50)
    assert route_of(smart(), *both_unknown) == ("a", "best_score")


def test_a_warm_agent_at_capacity_leaves_the_cold_one() -> None:
    cold = resident("a", Residency.UNLOADED)
    full = resident("b", Residency.LOADED, max_concurrent_requests=1)
    full.counters.pending = 1
    assert route_of(smart(), cold, full) == ("a", "only_candidate")


def test_a_much_worse_warm_agent_leaves_the_cold_one() -> None:
    cold = resident("a", Residency.UNLOADED, priority=0)
    warm = resident("b", Residency.LOADED, priority=100)
    warm.counters.pending = 10  # L = 0; with P = 0 its score is 20, below half of cold's 100
    assert route_of(smart(), cold, warm) == ("a", "best_score")
    warm.counters.pending = 0  # score 50: not much worse
    assert route_of(smart(), cold, warm) == ("b", "warm")


def test_among_warm_agents_the_score_decides() -> None:
    agents = (
        resident("a", Residency.UNLOADED, priority=0),
        resident("b", Residency.LOADED, priority=40),
        resident("c", Residency.LOADED, priority=30),
    )
    assert route_of(smart(), *agents) == ("c", "warm")


@pytest.mark.parametrize("strategy", ["round_robin", "priority_only", "random"])
def test_every_strategy_prefers_warm(strategy: str) -> None:
    cold = resident("a", Residency.UNLOADED, priority=0)
    warm = resident("b", Residency.LOADED, priority=90)
    scheduler = Scheduler(strategy, RoutingWeights())
    assert [route_of(scheduler, cold, warm) for _ in range(3)] == [("b", "warm")] * 3


def test_a_forced_probe_goes_to_a_cold_agent() -> None:
    cold = resident("a", Residency.UNLOADED)
    warm = resident("b", Residency.LOADED)
    routing_intent = intent(cold, warm)
    routing_intent.forced, routing_intent.route_reason = routing_intent.candidates[0], "probe"
    smart().reconcile(routing_intent)
    assert routing_intent.route is not None
    assert (routing_intent.route.agent.backend.name, routing_intent.route.reason) == ("a", "probe")


def test_when_all_are_cold_a_backend_holding_nothing_ranks_first() -> None:
    # "a" holds another model, so loading there evicts it; "b" holds none.
    busy = resident("a", Residency.UNLOADED, priority=10)
    busy.residency["other"] = ModelResidency(Residency.LOADED)
    empty = resident("b", Residency.UNLOADED, priority=50)
    empty.residency["other"] = ModelResidency(Residency.UNLOADED)
    assert route_of(smart(), busy, empty) == ("b", "best_score")
    # a model already loading ranks before both
    loading = resident("c", Residency.LOADING, priority=20)
    loading.residency["other"] = ModelResidency(Residency.LOADED)
    assert route_of(smart(), busy, loading, empty) == ("c", "best_score")


def test_an_unknown_agent_is_never_set_aside() -> None:
    cold = resident("a", Residency.UNLOADED, priority=50)
    warm = resident("b", Residency.LOADED, priority=50)
    unknown = backend("c", priority=10)
    assert route_of(smart(), cold, warm, unknown) == ("c", "best_score")
