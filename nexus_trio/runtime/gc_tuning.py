"""The garbage collector of a daemon process that holds thousands of streams.

CPython's cyclic collector stops the event loop while it scans. With its defaults (a young
collection every 700 net allocations) a gateway holding 2,000 streams (about half a million
tracked objects: coroutines, cancel scopes, tasks, h11 state) paused for 95 to 375 ms in full
collections every few seconds and for up to 50 ms in middle ones; every event relayed in a pause
is late by it, and the scanning cost a third of the gateway's CPU per event.
``tune_for_serving`` moves what exists at start-up (about 70,000 tracked objects: functions,
dicts, tuples, classes, modules) out of the collector's sight with ``gc.freeze`` and raises the
young threshold to 10,000 net allocations; the older generations keep CPython's defaults (a
middle collection every 10 young ones, a full one every 10 middle ones once the old generation
has grown by a quarter). Pauses remain, shorter and rarer: at 2,000 streams young collections
of 20 to 50 ms (the young generation counts allocations net of frees, so it can hold several
times 10,000 objects) and middle ones up to about 150 ms. Cycles are still collected; objects
freed by reference counting (nearly all) are freed at once, as before. A frozen object that
later falls into a reference cycle is never freed: what exists before the event loop lives as
long as the process. ``bench/streams.py`` shows the effect (README, "Garbage collection").

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
