"""The gateway's shared state, below the front ends: the generation a reload swaps
(:mod:`~nexus_trio.gateway.generation`), the live counters and the one frozen statistics
snapshot every reader builds its view from (:mod:`~nexus_trio.gateway.state`,
:mod:`~nexus_trio.gateway.statistics`), and the record of a finished request that the request
path hands to its sinks (:mod:`~nexus_trio.gateway.record`).

It never serves a route, never does I/O and never decides anything: it holds what the request
path, the background services and the reports share, and reads the capabilities (registry,
quality, spend) it is handed.
"""
