"""The command line: ``nexus-trio serve``, ``check-config``, ``simulate``, ``demo``, ``status``,
``spend``, ``keys`` and ``models`` (docs/cli.md).

What it owns: parsing arguments (:mod:`~nexus_trio.cli.commands`), ``check-config`` and the
systemd environment files it reads (:mod:`~nexus_trio.cli.check_config`,
:mod:`~nexus_trio.cli.env_file`), the demo and its traffic
(:mod:`~nexus_trio.cli.demo`, :mod:`~nexus_trio.cli.demo_traffic`), and what the ``status`` and
``spend`` commands print (:mod:`~nexus_trio.cli.status_report`,
:mod:`~nexus_trio.cli.spend_report`), the ``keys`` client of the admin API
(:mod:`~nexus_trio.cli.key_admin`) and the ``models`` command
(:mod:`~nexus_trio.cli.models_command`). It never runs inside the gateway's request path: the
daemon is started through :mod:`nexus_trio.runtime.supervisor`.
"""

from nexus_trio.cli.commands import main

__all__ = ["main"]
