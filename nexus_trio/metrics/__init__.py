"""Prometheus metrics (docs/metrics.md#metrics) on the app's own ``CollectorRegistry``.

Counters and histograms are observed on the request path. Gauges that describe state (in
flight, pending per backend, backend up) are not kept in sync by hand: a custom collector reads
them from the live objects at scrape time. Label values are bounded: ``model`` is a served or
configured model or ``"none"``, ``backend`` a configured name or ``"none"``.

``instruments`` holds :class:`Metrics` (the registry and every counter and histogram) and
``gauges`` the scrape-time collector with the snapshot it reads.
"""

from nexus_trio.metrics.gauges import GaugeSnapshot
from nexus_trio.metrics.instruments import CONTENT_TYPE_LATEST, Metrics, status_class

__all__ = ["CONTENT_TYPE_LATEST", "GaugeSnapshot", "Metrics", "status_class"]
