"""What the gateway reports about itself to people: the ``/v1/stats`` document
(:mod:`~nexus_trio.stats.document`) with its ``spend`` object (:mod:`~nexus_trio.stats.spend`),
and which of it a key may read (docs/keys.md#roles). It builds documents from what it is handed;
it never serves a route and never changes state.
"""
