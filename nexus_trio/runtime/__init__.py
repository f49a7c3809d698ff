"""The process: the composition root, the supervisor and its start and drain order, and what a
daemon needs from its host (docs/operations.md#runtime-shape).

What it owns: :mod:`~nexus_trio.runtime.wiring` (every long-lived object, built once, each
component handed only what it uses), :mod:`~nexus_trio.runtime.supervisor` (one nursery, start
order, drain order, signals, reloads), :mod:`~nexus_trio.runtime.front_end` (the listener and
hypercorn), :mod:`~nexus_trio.runtime.sdnotify` (systemd's notify protocol),
:mod:`~nexus_trio.runtime.open_files` (the open-files limit),
:mod:`~nexus_trio.runtime.gc_tuning` (the garbage collector's settings for serving) and
:mod:`~nexus_trio.runtime.logs` (text or JSON logging). It never decides routing and never
renders a response; no package below it imports it. Importing this package imports nothing
else.
"""
