"""The reconcilers of the routing pipeline (docs/routing.md#pipeline), each removing the agents it
rules out with its reasons: the request analyzer, health, privacy and tier, budget, quality, and
the scheduler that ranks what is left. Their order is written in
:mod:`nexus_trio.routing.pipeline`. Pure functions of the intent; no I/O.
"""

from nexus_trio.routing.reconcilers.analyzer import RequestAnalyzer
from nexus_trio.routing.reconcilers.budget import BudgetReconciler
from nexus_trio.routing.reconcilers.health import HealthReconciler
from nexus_trio.routing.reconcilers.policy import PrivacyReconciler, TierReconciler
from nexus_trio.routing.reconcilers.quality import QualityReconciler
from nexus_trio.routing.reconcilers.scheduler import Scheduler

__all__ = [
    "BudgetReconciler",
    "HealthReconciler",
    "PrivacyReconciler",
    "QualityReconciler",
    "RequestAnalyzer",
    "Scheduler",
    "TierReconciler",
]
