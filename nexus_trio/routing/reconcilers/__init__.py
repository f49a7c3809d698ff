"""The reconcilers of the routing pipeline; their order is written in ``routing/pipeline.py``."""

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
