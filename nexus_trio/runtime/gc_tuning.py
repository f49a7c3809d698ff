"""The garbage collector of a daemon process that holds thousands of streams.

CPython's cyclic collector stops the event loop while it scans, and a gateway holding thousands
of streams tracks hundreds of thousands of objects (coroutines, cancel scopes, tasks, h11
state): with CPython's defaults every event relayed during a pause is late by it.
``tune_for_serving`` moves what exists at start-up (functions, dicts, tuples, classes, modules)
out of the collector's sight with ``gc.freeze`` and raises the young threshold to
:data:`YOUNG_THRESHOLD` net allocations; the older generations keep CPython's defaults. Pauses
remain, shorter and rarer. Cycles are still collected; objects freed by reference counting
(nearly all) are freed at once, as before. A frozen object that later falls into a reference
cycle is never freed: what exists before the event loop lives as long as the process. What the
settings change is measured in ``bench/README.md`` ("Garbage collection").

The thresholds are CPython 3.11-3.13's generational ones; Python 3.14's incremental collector
reads them differently.

Owns the process-wide ``gc`` settings of ``nexus-trio serve`` and ``demo``, applied once before
the event loop starts. Never called by the daemon itself: a test process runs many daemons and
keeps its interpreter's defaults.
"""

from __future__ import annotations

import gc

#: Net allocations of tracked objects between young collections (CPython's default: 700).
YOUNG_THRESHOLD = 10_000


def tune_for_serving() -> int:
    """Freeze what exists now and raise the young threshold; return how many objects were
    frozen. The collector stays enabled."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD)
    return gc.get_freeze_count()
