"""File descriptors: enough of them for the requests the gateway admits.

Every request in flight holds two descriptors — the client's connection and the upstream one —
so ``server.max_in_flight_requests`` implies a descriptor budget. A shell's soft limit is often
1,024 while its hard limit is far higher: at start-up the daemon raises its soft
``RLIMIT_NOFILE`` to the hard limit (any process may), and warns when even that cannot hold
the configured number of requests. Running out would show as failed accepts and failed
upstream connects, blamed on nobody or, worse, on a backend.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("nexus_trio.descriptors")

#: Descriptors per request in flight: the client connection and the upstream connection.
PER_REQUEST = 2
#: Descriptors the process needs besides requests: listener, idle pooled connections, health
#: probes, logs, signal wakeup, Python itself.
BASELINE = 256


def raise_soft_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit in force.

    Never raises: where the limit cannot be changed, the current one is returned.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, hard, exc)
        return soft
    log.info("open-files limit raised from %d to %d", soft, hard)
    return hard


def needed(max_in_flight_requests: int) -> int | None:
    """Descriptors needed to hold ``max_in_flight_requests``; None when unlimited (0)."""
    if max_in_flight_requests == 0:
        return None
    return BASELINE + PER_REQUEST * max_in_flight_requests


def warn_if_short(max_in_flight_requests: int, limit: int) -> bool:
    """Log a warning when ``limit`` descriptors cannot hold the requests; True if it did."""
    want = needed(max_in_flight_requests)
    if limit == resource.RLIM_INFINITY:
        return False
    if want is None:
        log.warning(
            "server.max_in_flight_requests = 0 (unlimited) with an open-files limit of %d: "
            "past about %d requests in flight, connections will fail",
            limit,
            (limit - BASELINE) // PER_REQUEST,
        )
        return True
    if want > limit:
        log.warning(
            "server.max_in_flight_requests = %d needs about %d open files, but the limit is "
            "%d: raise LimitNOFILE (systemd) or ulimit -n, or lower max_in_flight_requests",
            max_in_flight_requests,
            want,
            limit,
        )
        return True
    return False
