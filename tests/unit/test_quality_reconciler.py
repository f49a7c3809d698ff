"""Quality in routing: exclusion, probes, panic, the scheduler's TTFT penalty
(docs/quality.md#exclusion, docs/quality.md#ttft-penalty)."""

from __future__ import annotations

from typing import Any

import pytest

from nexus_trio.config import HealthCheckConfig, QualityConfig, RoutingConfig, RoutingWeights
from nexus_trio.quality import Outcome, QualityStore
from nexus_trio.registry import Registry
from nexus_trio.routing import (
    Agent,
    Pipeline,
    RejectionReason,
    Requirements,
    Route,
    RoutingIntent,
    RoutingRequest,
)
from nexus_trio.routing.reconcilers import QualityReconciler, Scheduler
from tests.unit.routing_inputs import MODEL, backend, intent, names

WALL = 1_700_000_000.0


def store(**config: Any) -> QualityStore:
    return QualityStore(QualityConfig(**config))


def eject(quality: QualityStore, name: str, at: float = 0.0) -> None:
    """Fail ``name`` enough times in a row to exclude it at once (probe time ``at + 30``)."""
    for _ in range(quality.config.consecutive_failures):
        quality.record_outcome((name, MODEL), Outcome.FAILURE, now=at, wall=WALL)


def slow(quality: QualityStore, name: str, ttft_ms: float, at: float = 0.0) -> None:
    """Give ``name`` one streaming success with ``ttft_ms``, published by a recompute."""
    key = (name, MODEL)
    quality.record_outcome(key, Outcome.SUCCESS, now=at, wall=WALL, ttft_ms=ttft_ms, streaming=True)
    configured = {*quality.snapshot, key}
    quality.recompute(at, configured)


def reconcile(quality: QualityStore, routing_intent: RoutingIntent) -> RoutingIntent:
    QualityReconciler(quality).reconcile(routing_intent)
    return routing_intent


# exclusion ----------------------------------------------------------------------------------


def test_excluded_agent_is_removed_with_reason_and_time_to_its_probe() -> None:
    quality = store()
    eject(quality, "bad", at=100.0)
    routing_intent = reconcile(quality, intent(backend("good"), backend("bad"), now=110.0))
    assert names(routing_intent) == ["good"]
    [rejection] = routing_intent.rejections
    assert (rejection.backend, rejection.reconciler) == ("bad", "quality")
    assert rejection.reason is RejectionReason.CONSECUTIVE_FAILURES
    assert rejection.detail == "5 consecutive failures"
    assert rejection.retry_after == pytest.approx(20.0)
    assert (routing_intent.forced, routing_intent.route_reason) == (None, None)


def test_high_error_rate_rejection_names_the_numbers() -> None:
    quality = store(min_requests=10)
    key = ("bad", MODEL)
    for index in range(41):
        outcome = Outcome.SUCCESS if index % 8 in (0, 3, 6) else Outcome.FAILURE
        quality.record_outcome(key, outcome, now=0.0, wall=WALL)
    quality.recompute(1.0, [key])
    routing_intent = reconcile(quality, intent(backend("good"), backend("bad"), now=2.0))
    [rejection] = routing_intent.rejections
    assert rejection.reason is RejectionReason.HIGH_ERROR_RATE
    assert rejection.detail == "error rate 61% > 50% over 1h (41 requests)"
    assert rejection.retry_after == pytest.approx(29.0)


# probes -------------------------------------------------------------------------------------


def test_probe_routed_regardless_of_score() -> None:
    quality = store()
    eject(quality, "bad")
    registry = Registry(
        [backend("best").config, backend("bad", priority=100).config], {}, assume_healthy=True
    )
    pipeline = Pipeline.standard(registry, RoutingConfig(), HealthCheckConfig(), quality=quality)
    request = RoutingRequest(MODEL, stream=False, requirements=Requirements(), now=29.0)
    early = pipeline.decide(request)
    assert isinstance(early, Route)
    assert (early.agent.backend.name, early.reason) == ("best", "only_candidate")
    request.now = 30.0
    probe = pipeline.decide(request)
    assert isinstance(probe, Route)
    assert (probe.agent.backend.name, probe.reason) == ("bad", "probe")
    quality.probe_started(probe.agent.key, now=30.0)  # what the request path does
    after = pipeline.decide(request)
    assert isinstance(after, Route)
    assert after.agent.backend.name == "best"  # one probe in flight at a time


def test_probe_needs_another_candidate() -> None:
    quality = store()
    eject(quality, "bad")
    alone = reconcile(quality, intent(backend("bad"), now=30.0))
    assert alone.forced is None
    assert names(alone) == ["bad"]
    assert alone.route_reason == "quality_panic"
    # Another candidate that quality removes as well does not count.
    eject(quality, "worse", at=20.0)
    both = reconcile(quality, intent(backend("bad"), backend("worse"), now=30.0))
    assert both.forced is None
    assert both.route_reason == "quality_panic"
    assert names(both) == ["bad", "worse"]


def test_only_one_probe_per_request_and_a_forced_agent_is_kept() -> None:
    quality = store()
    eject(quality, "a")
    eject(quality, "b")
    routing_intent = intent(backend("a"), backend("b"), backend("good"), now=30.0)
    reconcile(quality, routing_intent)
    assert routing_intent.forced is not None
    assert routing_intent.forced.backend.name == "a"
    assert names(routing_intent) == ["a", "good"]  # b waits for the next request
    preset = intent(backend("a"), backend("good"), now=30.0)
    preset.forced = preset.candidates[1]
    reconcile(quality, preset)
    assert preset.forced is preset.candidates[-1]
    assert names(preset) == ["good"]


def test_all_excluded_enters_panic_mode() -> None:
    quality = store()
    eject(quality, "a")
    eject(quality, "b")
    registry = Registry([backend("a").config, backend("b").config], {}, assume_healthy=True)
    pipeline = Pipeline.standard(registry, RoutingConfig(), HealthCheckConfig(), quality=quality)
    decision = pipeline.decide(
        RoutingRequest(MODEL, stream=True, requirements=Requirements(), now=5.0)
    )
    assert isinstance(decision, Route)  # never a 503 because of quality
    assert (decision.agent.backend.name, decision.reason) == ("a", "quality_panic")


# TTFT penalty -------------------------------------------------------------------------------


def scheduler(quality: QualityStore) -> Scheduler:
    return Scheduler("smart", RoutingWeights(), quality=quality)


@pytest.mark.parametrize(
    ("avg_ttft_ms", "factor"),
    [(3750.0, 0.75), (4500.0, 0.5), (6000.0, 0.0), (9000.0, 0.0)],
)
def test_ttft_penalty_proportional_to_excess(avg_ttft_ms: float, factor: float) -> None:
    quality = store(ttft_penalty_threshold_ms=3000.0)
    slow(quality, "gpu", avg_ttft_ms)
    agent = Agent(backend("gpu"), MODEL)
    assert scheduler(quality).ttft_penalty(80.0, agent) == pytest.approx(80.0 * factor)


@pytest.mark.parametrize(("threshold_ms", "avg_ttft_ms"), [(3000.0, 3000.0), (3000.0, 10.0)])
def test_no_penalty_at_or_below_threshold(threshold_ms: float, avg_ttft_ms: float) -> None:
    quality = store(ttft_penalty_threshold_ms=threshold_ms)
    slow(quality, "gpu", avg_ttft_ms)
    agent = Agent(backend("gpu"), MODEL)
    assert scheduler(quality).ttft_penalty(80.0, agent) == 80.0


def test_no_penalty_without_samples_or_when_disabled() -> None:
    quality = store(ttft_penalty_threshold_ms=0.0)
    slow(quality, "gpu", 60000.0)
    assert scheduler(quality).ttft_penalty(80.0, Agent(backend("gpu"), MODEL)) == 80.0
    assert scheduler(quality).ttft_penalty(80.0, Agent(backend("new"), MODEL)) == 80.0
    without_store = Scheduler("smart", RoutingWeights())
    assert without_store.ttft_penalty(80.0, Agent(backend("gpu"), MODEL)) == 80.0


def test_penalty_reorders_the_smart_choice() -> None:
    quality = store(ttft_penalty_threshold_ms=1000.0)
    slow(quality, "preferred", 1500.0)  # loses half its score
    routing_intent = intent(backend("preferred", priority=0), backend("other"), now=1.0)
    scheduler(quality).reconcile(routing_intent)
    assert routing_intent.route is not None
    assert routing_intent.route.agent.backend.name == "other"
    assert routing_intent.scores[("preferred", MODEL)] == pytest.approx(50.0)


def test_penalty_never_excludes() -> None:
    quality = store(ttft_penalty_threshold_ms=1000.0)
    slow(quality, "crawl", 5000.0)
    routing_intent = reconcile(quality, intent(backend("crawl"), now=1.0, stream=False))
    assert (names(routing_intent), routing_intent.rejections) == (["crawl"], [])
    scheduler(quality).reconcile(routing_intent)
    assert routing_intent.scores[("crawl", MODEL)] == 0.0
    assert routing_intent.route is not None  # a zero score still wins alone
    assert routing_intent.route.agent.backend.name == "crawl"


def test_penalised_agent_gets_fresh_ttft_samples() -> None:
    quality = store(ttft_penalty_threshold_ms=1000.0, probe_interval_seconds=30.0)
    slow(quality, "crawl", 5000.0, at=0.0)
    slow(quality, "fine", 200.0, at=0.0)

    def forced(now: float, *, stream: bool = True, alone: bool = False) -> str | None:
        backends = [backend("crawl")] if alone else [backend("fine"), backend("crawl")]
        routing_intent = reconcile(quality, intent(*backends, now=now, stream=stream))
        assert routing_intent.rejections == []
        if routing_intent.forced is None:
            return None
        assert routing_intent.route_reason == "probe"
        return routing_intent.forced.backend.name

    assert forced(29.0) is None  # it had a streaming attempt less than 30 s ago
    assert forced(30.0, stream=False) is None  # only streaming requests measure TTFT
    assert forced(30.0, alone=True) is None  # it is routed anyway
    assert forced(30.0) == "crawl"
    quality.probe_started(("crawl", MODEL), now=30.0)
    assert forced(31.0) is None  # that probe is the fresh sample
    disabled = intent(backend("fine"), backend("crawl"), now=100.0)
    QualityReconciler(quality, ttft_probes=False).reconcile(disabled)
    assert disabled.forced is None
