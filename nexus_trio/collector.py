"""The garbage collector of a daemon process that holds thousands of streams.

CPython's cyclic collector stops the event loop while it scans. With its defaults (a young
collection every 700 net allocations, a full one whenever the old generation has grown by a
quarter) a gateway holding 2,000 streams (about half a million tracked objects: coroutines,
cancel scopes, tasks, h11 state) paused for 95 to 375 ms in full collections every few seconds
and for up to 50 ms in middle ones; every event relayed in a pause is late by it, and the
scanning cost a third of the gateway's CPU per event. ``tune_for_serving`` moves what exists at
start-up (some 70,000 modules, classes and functions, which never become garbage) out of the
collector's sight with ``gc.freeze`` and collects young objects in batches ten times larger.
Cycles are still collected; objects freed by reference counting (nearly all) are freed at once,
as before. ``bench/streams.py`` shows the effect: README, "Capacity".

Owns the process-wide ``gc`` settings of ``nexus-trio serve`` and ``demo``, applied once before
the event loop starts. Never called by the daemon itself: a test process runs many daemons and
keeps its interpreter's defaults.
"""

from __future__ import annotations

import gc

#: Net allocations between young collections (CPython's default: 700).
YOUNG_THRESHOLD = 10_000
#: Young collections per middle collection (default 10).
MIDDLE_THRESHOLD = 10
#: Middle collections per full one (default 10); CPython also waits until the old generation
#: has grown by a quarter since the last full collection.
OLD_THRESHOLD = 100


def tune_for_serving() -> int:
    """Freeze what exists now and raise the thresholds; return how many objects were frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    return gc.get_freeze_count()
