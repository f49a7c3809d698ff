"""The live dashboard: a page at ``/`` that shows what the gateway knows, updated every second.

What this package owns:

* the page itself — HTML, CSS and JavaScript under ``static/``, shipped as package data and
  served from memory by :mod:`~nexus_trio.dashboard.page` (no CDN, no build step);
* :class:`~nexus_trio.dashboard.request_log.RequestLog`, the ring buffer of the last finished
  proxy requests (metadata only: never prompts, completions or keys), appended to once per
  request by the accounting code;
* the snapshot shaping (:mod:`~nexus_trio.dashboard.snapshot`): ``/v1/stats`` plus rates,
  health and quality details, per-minute history and the new request-log entries;
* :class:`~nexus_trio.dashboard.publisher.SnapshotPublisher`, the background service that
  builds one snapshot per second while at least one dashboard is connected, shared by all,
  and derives from it, once per tenant key watching, the view of a tenant key (its own
  requests and spend only; docs/keys.md#roles);
* the server-sent-events endpoint ``GET /v1/dashboard/events``
  (:mod:`~nexus_trio.dashboard.events`), which ends when the gateway's listener closes so a
  connected dashboard never holds up a drain, and is never counted as a request in flight.

What it never touches: routing, quality decisions, health state and the upstream. It reads
the registry, the quality store and the request totals, and changes none of them.
"""
