"""Privacy and tier (docs/routing.md#privacy-and-tier, Nexus F13): where a model's requests may go.

``[[routing.policies]]`` are matched against the resolved model with shell globs
(:func:`fnmatch.fnmatchcase`: case-sensitive, ``*``, ``?``, ``[...]``); the **first** matching
policy is the one that applies, to privacy and tier alike — a later policy that also matches
adds nothing. Both rejections are permanent: the backend's zone and tier are configuration.
There is no other tier logic (Nexus' header that downgraded tiers is not carried over).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from nexus_trio.config import RoutingPolicy
from nexus_trio.routing.intent import RejectionReason, RoutingIntent


def first_policy(policies: Sequence[RoutingPolicy], model: str) -> RoutingPolicy | None:
    """The first policy whose ``model_pattern`` matches ``model``, or None."""
    for policy in policies:
        if fnmatch.fnmatchcase(model, policy.model_pattern):
            return policy
    return None


class _PolicyReconciler:
    """Shared by Privacy and Tier: the first ``[[routing.policies]]`` entry that applies."""

    def __init__(self, policies: Sequence[RoutingPolicy]) -> None:
        """Apply ``[[routing.policies]]`` in their configured order."""
        self._policies = policies

    def _policy(self, intent: RoutingIntent) -> RoutingPolicy | None:
        if not intent.candidates:
            return None
        return first_policy(self._policies, intent.resolved_model)


class PrivacyReconciler(_PolicyReconciler):
    """Under a ``privacy = "restricted"`` policy, or for a restricted key
    (docs/keys.md#keys), removes backends in the ``open`` zone."""

    name = "privacy"

    def reconcile(self, intent: RoutingIntent) -> None:
        policy = self._policy(intent)
        if policy is not None and policy.privacy == "restricted":
            detail = f"zone open; policy '{policy.model_pattern}' requires restricted"
        elif intent.request.restricted:
            detail = "zone open; the request's key is restricted"
        else:
            return
        for agent in list(intent.candidates):
            if agent.backend.config.privacy_zone() == "open":
                intent.remove(agent, self.name, RejectionReason.PRIVACY_ZONE, detail)


class TierReconciler(_PolicyReconciler):
    """Under a ``min_tier = N`` policy, removes backends whose ``tier`` is below N."""

    name = "tier"

    def reconcile(self, intent: RoutingIntent) -> None:
        policy = self._policy(intent)
        if policy is None or policy.min_tier is None:
            return
        min_tier = policy.min_tier
        for agent in list(intent.candidates):
            tier = agent.backend.config.tier
            if tier < min_tier:
                detail = f"tier {tier} < min_tier {min_tier} (policy '{policy.model_pattern}')"
                intent.remove(agent, self.name, RejectionReason.TIER_TOO_LOW, detail)
