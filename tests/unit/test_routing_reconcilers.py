"""The reconcilers before the scheduler: analyzer, health, privacy, tier, budget, quality
(docs/routing.md#routing)."""

from __future__ import annotations

import pytest

from nexus_trio.config import ModelCapabilities, QualityConfig, RoutingPolicy
from nexus_trio.quality import QualityStore
from nexus_trio.registry import HealthState, Registry
from nexus_trio.routing import RejectionReason, RoutingIntent
from nexus_trio.routing.reconcilers import (
    HealthReconciler,
    PrivacyReconciler,
    QualityReconciler,
    RequestAnalyzer,
    TierReconciler,
)
from tests.unit.routing_inputs import MODEL, backend, backend_config, intent, names

R = RejectionReason


def reasons(routing_intent: RoutingIntent) -> list[tuple[str, str, str]]:
    return [(r.backend, r.reconciler, r.reason.value) for r in routing_intent.rejections]


# RequestAnalyzer ----------------------------------------------------------------------------

ALIASES = {"one": MODEL, "two": "one", "three": "two"}


@pytest.mark.parametrize("requested", [MODEL, "one", "two", "three"])
def test_aliases_resolve_up_to_three_hops(requested: str) -> None:
    registry = Registry(
        [backend_config("a"), backend_config("b", models=["other"])], {}, assume_healthy=True
    )
    routing_intent = intent(model=requested)
    RequestAnalyzer(registry, ALIASES).reconcile(routing_intent)
    assert routing_intent.resolved_model == MODEL
    assert routing_intent.model_known
    assert [agent.key for agent in routing_intent.candidates] == [("a", MODEL)]


def test_alias_resolution_stops_after_three_hops_even_if_unvalidated() -> None:
    analyzer = RequestAnalyzer(Registry([], {}), {"a": "b", "b": "c", "c": "d", "d": "e"})
    assert analyzer.resolve("a") == "d"
    assert analyzer.resolve("loop") == "loop"


def test_unknown_model_is_not_known_and_rejects_nothing() -> None:
    registry = Registry([backend_config("a")], {}, assume_healthy=True)
    routing_intent = intent(model="mistral:7b")
    RequestAnalyzer(registry, {}).reconcile(routing_intent)
    assert not routing_intent.model_known
    assert routing_intent.candidates == []
    assert routing_intent.rejections == []


def test_candidates_are_every_serving_backend_in_configuration_order_whatever_health() -> None:
    registry = Registry(
        [backend_config("c"), backend_config("a"), backend_config("b", models=["x"])], {}
    )
    routing_intent = intent()
    RequestAnalyzer(registry, {}).reconcile(routing_intent)
    assert routing_intent.model_known
    assert names(routing_intent) == ["c", "a"]


def test_tried_agents_and_skipped_backends_are_left_out_without_rejection() -> None:
    registry = Registry(
        [backend_config(n, models=[MODEL, "x"]) for n in "abcd"], {}, assume_healthy=True
    )
    routing_intent = intent()
    routing_intent.request.tried = frozenset({("a", MODEL), ("b", "x")})
    routing_intent.request.skip_backends = frozenset({"c"})
    RequestAnalyzer(registry, {}).reconcile(routing_intent)
    assert names(routing_intent) == ["b", "d"]
    assert routing_intent.rejections == []


def test_a_model_the_key_may_not_use_loses_every_agent_and_is_unknown() -> None:
    registry = Registry([backend_config("a"), backend_config("b")], {}, assume_healthy=True)
    routing_intent = intent()
    routing_intent.request.model_allowed = False
    RequestAnalyzer(registry, {}).reconcile(routing_intent)
    assert routing_intent.candidates == []
    assert not routing_intent.model_known
    assert reasons(routing_intent) == [
        ("a", "request_analyzer", "model_not_allowed"),
        ("b", "request_analyzer", "model_not_allowed"),
    ]
    assert all(rejection.permanent for rejection in routing_intent.rejections)


def test_embeddings_drop_only_models_known_not_to_embed() -> None:
    registry = Registry(
        [
            backend_config("plain", models=["bge-m3"]),
            backend_config("listed", models=[], embedding_models=["bge-m3"]),
            backend_config(
                "override",
                models=["bge-m3"],
                capabilities={"bge-m3": ModelCapabilities(embeddings=True)},
            ),
            backend_config(
                "chat-only",
                models=["bge-m3"],
                capabilities={"bge-m3": ModelCapabilities(embeddings=False)},
            ),
        ],
        {},
        assume_healthy=True,
    )
    routing_intent = intent(model="bge-m3", needs_embeddings=True)
    RequestAnalyzer(registry, {}).reconcile(routing_intent)
    assert names(routing_intent) == ["plain", "listed", "override"]
    assert routing_intent.unconfirmed == {("plain", "bge-m3")}
    [rejection] = routing_intent.rejections
    assert (rejection.backend, rejection.reconciler) == ("chat-only", "request_analyzer")
    assert (rejection.reason, rejection.detail) == (R.MISSING_CAPABILITY, "embeddings")


def test_embeddings_go_to_a_model_nobody_declared() -> None:
    registry = Registry([backend_config("llama", models=["smollm2"])], {}, assume_healthy=True)
    routing_intent = intent(model="smollm2", needs_embeddings=True)
    RequestAnalyzer(registry, {}).reconcile(routing_intent)
    assert names(routing_intent) == ["llama"]
    assert routing_intent.rejections == []


# Health -------------------------------------------------------------------------------------


def test_health_removes_unhealthy_and_unknown_with_the_probe_interval() -> None:
    routing_intent = intent(
        backend("up"),
        backend("down", HealthState.UNHEALTHY),
        backend("new", HealthState.UNKNOWN),
    )
    HealthReconciler(Registry([], {}), 30.0).reconcile(routing_intent)
    assert names(routing_intent) == ["up"]
    assert reasons(routing_intent) == [
        ("down", "health", "unhealthy"),
        ("new", "health", "unknown_health"),
    ]
    assert [r.retry_after for r in routing_intent.rejections] == [30.0, 30.0]


@pytest.mark.parametrize(
    ("requirement", "model", "override", "detail"),
    [
        ("needs_vision", "llama3:8b", ModelCapabilities(vision=False), "vision"),
        ("needs_tools", "phi3:mini", ModelCapabilities(tools=False), "tools"),
        ("needs_json_mode", "llama3:8b", ModelCapabilities(json_mode=False), "json_mode"),
    ],
)
def test_health_removes_models_known_to_lack_a_capability(
    requirement: str, model: str, override: ModelCapabilities, detail: str
) -> None:
    lacking = backend("lacking", models=[model], capabilities={model: override})
    able = backend(
        "able",
        models=[model],
        capabilities={model: ModelCapabilities(vision=True, tools=True, json_mode=True)},
    )
    routing_intent = intent(lacking, able, model=model, **{requirement: True})
    HealthReconciler(Registry([], {}), 30.0).reconcile(routing_intent)
    assert names(routing_intent) == ["able"]
    assert routing_intent.unconfirmed == set()
    [rejection] = routing_intent.rejections
    assert (rejection.reason, rejection.detail, rejection.retry_after) == (
        R.MISSING_CAPABILITY,
        detail,
        None,
    )


@pytest.mark.parametrize(
    ("requirement", "model"),
    [
        ("needs_vision", "my-finetune"),
        ("needs_tools", "gemma-3"),
        ("needs_tools", "deepseek-v3"),
        ("needs_tools", "phi-4"),
        ("needs_tools", "gpt-5"),
        ("needs_json_mode", "smollm2"),
    ],
)
def test_an_unknown_capability_is_never_a_reason_to_refuse(requirement: str, model: str) -> None:
    unknown = backend("unknown", models=[model])
    routing_intent = intent(unknown, model=model, **{requirement: True})
    HealthReconciler(Registry([], {}), 30.0).reconcile(routing_intent)
    assert names(routing_intent) == ["unknown"]
    assert routing_intent.rejections == []
    assert routing_intent.unconfirmed == {("unknown", model)}


def test_a_name_on_the_lists_confirms_a_capability() -> None:
    guessed = backend("guessed", models=["llava:7b"])
    routing_intent = intent(guessed, model="llava:7b", needs_vision=True)
    HealthReconciler(Registry([], {}), 30.0).reconcile(routing_intent)
    assert names(routing_intent) == ["guessed"]
    assert routing_intent.unconfirmed == set()


def test_missing_capability_detail_names_every_missing_one_before_health() -> None:
    lacking = ModelCapabilities(vision=False, tools=False)
    routing_intent = intent(
        backend("down", HealthState.UNHEALTHY, capabilities={MODEL: lacking}),
        needs_vision=True,
        needs_tools=True,
    )
    HealthReconciler(Registry([], {}), 30.0).reconcile(routing_intent)
    [rejection] = routing_intent.rejections
    assert (rejection.reason, rejection.detail) == (R.MISSING_CAPABILITY, "vision, tools")


def test_context_too_long_only_with_a_known_context_length() -> None:
    short = backend("short", capabilities={MODEL: ModelCapabilities(context_length=4096)})
    unknown = backend("unknown")
    routing_intent = intent(short, unknown, estimated_tokens=5000)
    HealthReconciler(Registry([], {}), 30.0).reconcile(routing_intent)
    assert names(routing_intent) == ["unknown"]
    [rejection] = routing_intent.rejections
    assert rejection.reason is R.CONTEXT_TOO_LONG
    assert rejection.detail == "~5000 tokens > context length 4096"

    at_limit = intent(short, estimated_tokens=4096)
    HealthReconciler(Registry([], {}), 30.0).reconcile(at_limit)
    assert names(at_limit) == ["short"]


def test_cooldown_removes_some_agents_with_the_time_left() -> None:
    cooling, fresh, other_model = backend("cooling"), backend("fresh"), backend("other")
    cooling.cooldown_until[MODEL] = 112.5
    other_model.cooldown_until["qwen2.5:7b"] = 500.0
    routing_intent = intent(cooling, fresh, other_model, now=100.0)
    HealthReconciler(Registry([], {}), 30.0).reconcile(routing_intent)
    assert names(routing_intent) == ["fresh", "other"]
    [rejection] = routing_intent.rejections
    assert (rejection.reason, rejection.retry_after) == (R.RATE_LIMITED, 12.5)
    assert rejection.detail == "429 cooldown for 12.5 s more"


def test_cooldown_never_removes_the_last_candidates() -> None:
    first, second, down = (
        backend("first"),
        backend("second"),
        backend("down", HealthState.UNHEALTHY),
    )
    first.cooldown_until[MODEL] = 150.0
    second.cooldown_until[MODEL] = 160.0
    routing_intent = intent(first, second, down, now=100.0)
    HealthReconciler(Registry([], {}), 30.0).reconcile(routing_intent)
    assert names(routing_intent) == ["first", "second"]
    assert reasons(routing_intent) == [("down", "health", "unhealthy")]


def test_cooldown_expires_at_its_end() -> None:
    cooling, fresh = backend("cooling"), backend("fresh")
    cooling.cooldown_until[MODEL] = 112.5
    routing_intent = intent(cooling, fresh, now=112.5)
    HealthReconciler(Registry([], {}), 30.0).reconcile(routing_intent)
    assert names(routing_intent) == ["cooling", "fresh"]


# Privacy and tier ---------------------------------------------------------------------------


def test_restricted_policy_removes_open_backends() -> None:
    policies = [RoutingPolicy(model_pattern="llama*", privacy="restricted")]
    local = backend("local")
    cloud = backend("cloud", type="openai")
    lan_but_open = backend("open-zone", zone="OPEN")
    routing_intent = intent(local, cloud, lan_but_open)
    PrivacyReconciler(policies).reconcile(routing_intent)
    assert names(routing_intent) == ["local"]
    assert reasons(routing_intent) == [
        ("cloud", "privacy", "privacy_zone"),
        ("open-zone", "privacy", "privacy_zone"),
    ]
    assert routing_intent.rejections[0].detail == ("zone open; policy 'llama*' requires restricted")


def test_no_matching_policy_removes_nothing() -> None:
    policies = [RoutingPolicy(model_pattern="Llama*", privacy="restricted", min_tier=5)]
    routing_intent = intent(backend("cloud", type="openai"))
    PrivacyReconciler(policies).reconcile(routing_intent)
    TierReconciler(policies).reconcile(routing_intent)
    assert names(routing_intent) == ["cloud"]


def test_first_matching_policy_wins_for_privacy_and_tier() -> None:
    policies = [
        RoutingPolicy(model_pattern="llama3:*", privacy="open"),
        RoutingPolicy(model_pattern="llama*", privacy="restricted", min_tier=3),
    ]
    for reconciler in (PrivacyReconciler(policies), TierReconciler(policies)):
        routing_intent = intent(backend("cloud", type="openai", models=[MODEL, "llama2:7b"]))
        reconciler.reconcile(routing_intent)
        assert names(routing_intent) == ["cloud"]

        routing_intent = intent(backend("cloud", type="openai", models=["llama2:7b"]))
        routing_intent.resolved_model = "llama2:7b"
        reconciler.reconcile(routing_intent)
        assert names(routing_intent) == []


def test_min_tier_removes_lower_tiers() -> None:
    policies = [RoutingPolicy(model_pattern="*", min_tier=3)]
    routing_intent = intent(backend("t1", tier=1), backend("t3", tier=3), backend("t5", tier=5))
    TierReconciler(policies).reconcile(routing_intent)
    assert names(routing_intent) == ["t3", "t5"]
    [rejection] = routing_intent.rejections
    assert (rejection.reconciler, rejection.reason) == ("tier", R.TIER_TOO_LOW)
    assert rejection.detail == "tier 1 < min_tier 3 (policy '*')"
    assert rejection.permanent


# Quality ------------------------------------------------------------------------------------


def test_quality_keeps_agents_without_history() -> None:
    routing_intent = intent(backend("a"), backend("b", HealthState.UNHEALTHY))
    QualityReconciler(QualityStore(QualityConfig())).reconcile(routing_intent)
    assert names(routing_intent) == ["a", "b"]
    assert routing_intent.rejections == []
    assert routing_intent.route_reason is None
    assert routing_intent.forced is None
