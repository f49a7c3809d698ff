"""The front end (docs/api.md): what happens to a client's request from its first byte to its
last.

What it owns: the authorisation decided once before any route (:mod:`~nexus_trio.api.gate`,
:mod:`~nexus_trio.api.cors`, applied by :mod:`~nexus_trio.api.middleware`), the proxy routes
served at the ASGI layer (:mod:`~nexus_trio.api.proxy`, with the body view of
:mod:`~nexus_trio.api.bodies`), forwarding with retries, fallbacks and the capacity queue
(:mod:`~nexus_trio.api.forwarding`, :mod:`~nexus_trio.api.admission_queue`), one upstream attempt
(:mod:`~nexus_trio.api.attempt`), the budgets on the request path
(:mod:`~nexus_trio.api.budgets`), disconnects (:mod:`~nexus_trio.asgi.disconnects`), accounting
(:mod:`~nexus_trio.api.accounting`), the Quart routes and the app factory. It never decides a
route itself (the routing package does), never speaks a provider's dialect (the cloud package
does) and never serves the dashboard: the server mounts it beside the API.
"""
