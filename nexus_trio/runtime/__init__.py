"""The process: the supervisor and its start and drain order, the long-lived objects it wires,
and what a daemon needs from its host (docs/operations.md#runtime-shape).

What it owns: :mod:`~nexus_trio.runtime.supervisor` (one nursery, start order, drain order,
signals), :mod:`~nexus_trio.runtime.services` (the objects built once and handed to the
services), :mod:`~nexus_trio.runtime.drain` (the shared shutdown state),
:mod:`~nexus_trio.runtime.sdnotify` (systemd's notify protocol),
:mod:`~nexus_trio.runtime.open_files` (the open-files limit),
:mod:`~nexus_trio.runtime.gc_tuning` (the garbage collector's settings for serving) and
:mod:`~nexus_trio.runtime.logs` (text or JSON logging). It never decides routing and never
renders a response. Importing this package imports nothing else: ``drain`` is used by the request
path, the supervisor only by the command line.
"""
