"""The scheduler's strategies and the whole pipeline (docs/routing.md#pipeline,
docs/routing.md#scheduler, docs/routing.md#queue-and-overload)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from nexus_trio.config import BackendConfig, HealthCheckConfig, RoutingConfig, RoutingWeights
from nexus_trio.registry import Backend, HealthState, Registry
from nexus_trio.routing import (
    Agent,
    CloudUse,
    Pipeline,
    Queue,
    Reject,
    RejectionReason,
    Requirements,
    Route,
    RoutingRequest,
)
from nexus_trio.routing.reconcilers import Scheduler
from tests.unit.routing_inputs import MODEL, backend, backend_config, intent


def request(model: str = MODEL, *, stream: bool = True, **fields: Any) -> RoutingRequest:
    return RoutingRequest(model, stream=stream, requirements=Requirements(), now=100.0, **fields)


def schedule(scheduler: Scheduler, *backends: Backend, model: str = MODEL) -> Route | None:
    routing_intent = intent(*backends, model=model)
    scheduler.reconcile(routing_intent)
    return routing_intent.route


def chosen(route: Route | None) -> tuple[str, str]:
    assert route is not None
    return route.agent.backend.name, route.reason


def smart(**weights: float) -> Scheduler:
    return Scheduler("smart", RoutingWeights(**weights))


# smart score --------------------------------------------------------------------------------


def test_smart_score_worked_example() -> None:
    gpu = backend("gpu", priority=20)
    gpu.counters.pending = 3
    gpu.counters.ttft_ewma_ms = 500.0
    gpu.counters.ms_per_output_token_ewma = 50.0
    # P = 80, L = 70, T = 75 (streaming: 1 - 500/2000; non-streaming: 1 - 50/200).
    agent = Agent(gpu, MODEL)
    assert smart().base_score(agent, stream=True) == pytest.approx(76.0)
    assert smart().base_score(agent, stream=False) == pytest.approx(76.0)


@pytest.mark.parametrize(
    ("fields", "pending", "ttft_ms", "expected"),
    [
        ({}, 0, None, (50 * 50 + 100 * 30 + 100 * 20) / 100),  # no data: T = 100
        ({"priority": 150}, 0, 5000.0, (0 + 100 * 30 + 0) / 100),  # P and T clamp to 0
        ({"priority": -10}, 0, None, 100.0),  # P clamps to 100
        ({"max_concurrent_requests": 4}, 3, None, (50 * 50 + 25 * 30 + 100 * 20) / 100),
        ({}, 12, None, (50 * 50 + 0 + 100 * 20) / 100),  # L never below 0
    ],
)
def test_smart_score_terms(
    fields: dict[str, Any], pending: int, ttft_ms: float | None, expected: float
) -> None:
    gpu = backend("gpu", **fields)
    gpu.counters.pending = pending
    gpu.counters.ttft_ewma_ms = ttft_ms
    assert smart().base_score(Agent(gpu, MODEL), stream=True) == pytest.approx(expected)


def test_smart_weights_change_the_mean() -> None:
    agent = Agent(backend("gpu", priority=20), MODEL)  # P = 80, L = 100, T = 100
    scheduler = smart(priority=1, load=0, latency=0)
    assert scheduler.base_score(agent, stream=True) == pytest.approx(80.0)


def test_smart_picks_the_highest_score_and_records_every_score() -> None:
    busy, idle = backend("busy"), backend("idle")
    busy.counters.pending = 5
    routing_intent = intent(busy, idle)
    smart().reconcile(routing_intent)
    assert chosen(routing_intent.route) == ("idle", "best_score")
    assert routing_intent.scores == {
        ("busy", MODEL): pytest.approx(60.0),  # P = 50, L = 50, T = 100
        ("idle", MODEL): pytest.approx(75.0),  # P = 50, L = 100, T = 100
    }


def test_smart_ties_break_by_priority_then_name() -> None:
    scheduler = smart(priority=0)  # priority no longer scores, only breaks ties
    by_priority = schedule(scheduler, backend("a", priority=20), backend("b", priority=10))
    assert chosen(by_priority) == ("b", "best_score")
    by_name = schedule(scheduler, backend("b"), backend("a"))
    assert chosen(by_name) == ("a", "best_score")


def test_one_available_candidate_is_only_candidate() -> None:
    assert chosen(schedule(smart(), backend("solo"))) == ("solo", "only_candidate")


# other strategies ---------------------------------------------------------------------------


def test_round_robin_rotates_per_model_in_configuration_order() -> None:
    scheduler = Scheduler("round_robin", RoutingWeights())
    fleet = [backend(n, models=[MODEL, "qwen2.5:7b"]) for n in "abc"]
    picks = [chosen(schedule(scheduler, *fleet)) for _ in range(4)]
    assert picks == [(n, "round_robin") for n in "abca"]
    assert chosen(schedule(scheduler, *fleet, model="qwen2.5:7b"))[0] == "a"
    assert chosen(schedule(scheduler, *fleet))[0] == "b"


def test_round_robin_skips_agents_at_capacity() -> None:
    scheduler = Scheduler("round_robin", RoutingWeights())
    full = backend("b", max_concurrent_requests=1)
    full.counters.pending = 1
    fleet = [backend("a"), full, backend("c")]
    assert [chosen(schedule(scheduler, *fleet))[0] for _ in range(3)] == ["a", "c", "a"]


def test_priority_only_takes_the_lowest_priority_then_name() -> None:
    scheduler = Scheduler("priority_only", RoutingWeights())
    loaded = backend("loaded", priority=10)
    loaded.counters.pending = 9
    fleet = [backend("b", priority=30), loaded, backend("a", priority=10)]
    assert chosen(schedule(scheduler, *fleet)) == ("a", "priority")


def test_random_uses_the_injected_generator() -> None:
    fleet = [backend(n) for n in "abcde"]
    scheduler = Scheduler("random", RoutingWeights(), rng=random.Random(42))
    expected = random.Random(42)
    for _ in range(10):
        route = schedule(scheduler, *fleet)
        assert chosen(route) == (expected.choice(fleet).name, "random")


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="fastest"):
        Scheduler("fastest", RoutingWeights())


# capacity, forced routes, reasons set upstream ----------------------------------------------


def test_everything_at_capacity_routes_nowhere() -> None:
    full = backend("full", max_concurrent_requests=2)
    full.counters.pending = 2
    routing_intent = intent(full)
    smart().reconcile(routing_intent)
    assert routing_intent.route is None
    assert [a.backend.name for a in routing_intent.candidates] == ["full"]


def test_forced_agent_wins_regardless_of_score_unless_at_capacity() -> None:
    best, slow = backend("best"), backend("slow", priority=100)
    routing_intent = intent(best, slow)
    routing_intent.forced = routing_intent.candidates[1]
    routing_intent.route_reason = "probe"
    smart().reconcile(routing_intent)
    assert chosen(routing_intent.route) == ("slow", "probe")

    full_slow = backend("slow", priority=100, max_concurrent_requests=1)
    full_slow.counters.pending = 1
    routing_intent = intent(best, full_slow)
    routing_intent.forced = routing_intent.candidates[1]
    routing_intent.route_reason = "probe"
    smart().reconcile(routing_intent)
    assert chosen(routing_intent.route) == ("best", "only_candidate")


def test_route_reason_without_forced_agent_overrides_the_strategy_reason() -> None:
    routing_intent = intent(backend("a"), backend("b", priority=60))
    routing_intent.route_reason = "quality_panic"
    smart().reconcile(routing_intent)
    assert chosen(routing_intent.route) == ("a", "quality_panic")


@pytest.mark.parametrize("strategy", ["smart", "round_robin", "priority_only", "random"])
def test_known_support_ranks_before_a_guess_whatever_the_strategy(strategy: str) -> None:
    guessed, known = backend("guessed", priority=0), backend("known", priority=100)
    routing_intent = intent(guessed, known)
    routing_intent.unconfirmed = {("guessed", MODEL)}
    Scheduler(strategy, RoutingWeights(), rng=random.Random(1)).reconcile(routing_intent)
    assert routing_intent.route is not None
    assert routing_intent.route.agent.backend.name == "known"
    assert routing_intent.route.reason != "only_candidate"


def test_an_unconfirmed_agent_serves_when_no_confirmed_one_is_free() -> None:
    guessed = backend("guessed")
    full = backend("known", max_concurrent_requests=1)
    full.counters.pending = 1
    routing_intent = intent(guessed, full)
    routing_intent.unconfirmed = {("guessed", MODEL)}
    smart().reconcile(routing_intent)
    assert chosen(routing_intent.route) == ("guessed", "only_candidate")


def test_a_probe_of_an_unconfirmed_agent_waits_for_a_request_it_is_sure_to_serve() -> None:
    known, guessed = backend("known"), backend("guessed")
    routing_intent = intent(known, guessed)
    routing_intent.unconfirmed = {("guessed", MODEL)}
    routing_intent.forced = routing_intent.candidates[1]
    routing_intent.route_reason = "probe"
    smart().reconcile(routing_intent)
    assert chosen(routing_intent.route) == ("known", "best_score")


# the pipeline -------------------------------------------------------------------------------


def pipeline(*configs: BackendConfig, **routing: Any) -> tuple[Pipeline, Registry]:
    registry = Registry(list(configs), {}, assume_healthy=True)
    built = Pipeline.standard(registry, RoutingConfig(**routing), HealthCheckConfig())
    return built, registry


def test_the_order_is_the_specs() -> None:
    built, _ = pipeline()
    assert [r.name for r in built.reconcilers] == [
        "request_analyzer",
        "health",
        "privacy",
        "tier",
        "budget",
        "quality",
        "scheduler",
    ]


def test_route_carries_the_resolved_model() -> None:
    built, _ = pipeline(backend_config("a"), aliases={"fast": MODEL})
    decision = built.decide(request("fast"))
    assert isinstance(decision, Route)
    assert (decision.agent.key, decision.reason, decision.resolved_model) == (
        ("a", MODEL),
        "only_candidate",
        MODEL,
    )


def test_unknown_model_is_rejected_as_unknown() -> None:
    built, _ = pipeline(backend_config("a"))
    decision = built.decide(request("mistral:7b"))
    assert decision == Reject("mistral:7b", (), model_known=False)


def test_rejections_come_in_order_with_the_earliest_recovery() -> None:
    built, registry = pipeline(
        backend_config("gpu-a"), backend_config("gpu-b"), backend_config("gpu-c")
    )
    states = {"gpu-a": HealthState.UNHEALTHY, "gpu-b": HealthState.UNKNOWN}
    for each in registry:
        each.health = states.get(each.name, HealthState.UNHEALTHY)
    decision = built.decide(request())
    assert isinstance(decision, Reject)
    assert decision.model_known
    assert [(r.backend, r.reason.value) for r in decision.rejections] == [
        ("gpu-a", "unhealthy"),
        ("gpu-b", "unknown_health"),
        ("gpu-c", "unhealthy"),
    ]
    assert decision.retry_after_seconds() == 30
    assert decision.message() == (
        f"No backend can serve '{MODEL}' now: 3 excluded (2 unhealthy, 1 unknown_health)"
    )


def test_retries_ask_again_without_tried_agents_and_skipped_backends() -> None:
    built, _ = pipeline(
        backend_config("a", priority=10), backend_config("b", priority=20), backend_config("c")
    )
    first = built.decide(request())
    assert isinstance(first, Route)
    assert first.agent.backend.name == "a"
    second = built.decide(request(tried=frozenset({first.agent.key})))
    assert isinstance(second, Route)
    assert second.agent.backend.name == "b"
    third = built.decide(
        request(tried=frozenset({first.agent.key}), skip_backends=frozenset({"b"}))
    )
    assert isinstance(third, Route)
    assert (third.agent.backend.name, third.reason) == ("c", "only_candidate")
    spent = built.decide(
        request(tried=frozenset({("a", MODEL), ("c", MODEL)}), skip_backends=frozenset({"b"}))
    )
    assert spent == Reject(MODEL, (), model_known=True)


def test_at_capacity_is_queued_for_the_resolved_model() -> None:
    built, registry = pipeline(
        backend_config("a", max_concurrent_requests=1), aliases={"fast": MODEL}
    )
    for full in registry:
        full.counters.pending = 1
    decision = built.decide(request("fast"))
    assert isinstance(decision, Queue)
    assert (decision.resolved_model, decision.reason) == (MODEL, "at_capacity")
    assert [agent.key for agent in decision.agents] == [("a", MODEL)]


# the budget (docs/spend.md#budgets) ---------------------------------------------------------


def budget_pipeline() -> tuple[Pipeline, Registry]:
    return pipeline(
        backend_config("cloud", type="openai", priority=1),
        backend_config("local", max_concurrent_requests=1, priority=90),
    )


def test_within_budget_cloud_is_chosen_on_its_score() -> None:
    built, _ = budget_pipeline()
    decision = built.decide(request(cloud_use=CloudUse.ALLOWED))
    assert isinstance(decision, Route)
    assert (decision.agent.backend.name, decision.reason) == ("cloud", "best_score")


def test_past_the_soft_limit_local_first_with_its_own_route_reason() -> None:
    built, _ = budget_pipeline()
    decision = built.decide(request(cloud_use=CloudUse.LAST_RESORT))
    assert isinstance(decision, Route)
    assert (decision.agent.backend.name, decision.reason) == ("local", "budget_soft_limit")
    assert decision.rejections == ()


def test_past_the_soft_limit_cloud_serves_when_no_local_can() -> None:
    built, registry = budget_pipeline()
    registry.get("local").counters.pending = 1  # at capacity
    decision = built.decide(request(cloud_use=CloudUse.LAST_RESORT))
    assert isinstance(decision, Route)
    assert (decision.agent.backend.name, decision.reason) == ("cloud", "only_candidate")


def test_past_the_hard_limit_cloud_is_rejected_and_local_serves() -> None:
    built, registry = budget_pipeline()
    decision = built.decide(request(cloud_use=CloudUse.NONE))
    assert isinstance(decision, Route)
    assert decision.agent.backend.name == "local"
    assert [(r.backend, r.reason) for r in decision.rejections] == [
        ("cloud", RejectionReason.BUDGET_EXHAUSTED)
    ]
    registry.get("local").health = HealthState.UNHEALTHY
    rejected = built.decide(request(cloud_use=CloudUse.NONE))
    assert isinstance(rejected, Reject)
    assert rejected.reason_codes() == ["unhealthy", "budget_exhausted"]


def test_budget_exhausted_alone_is_permanent() -> None:
    built, _ = pipeline(backend_config("cloud", type="openai"))
    rejected = built.decide(request(cloud_use=CloudUse.NONE))
    assert isinstance(rejected, Reject)
    assert rejected.all_permanent
    assert rejected.retry_after_seconds() is None
