"""Talking to backends (docs/proxying.md): what crosses the wire between the gateway and an
upstream server.

What it owns: one HTTP/1.1 keep-alive connection pool per backend behind
``httpx.AsyncBaseTransport`` (:mod:`~nexus_trio.upstream.transport`,
:mod:`~nexus_trio.upstream.pool`, :mod:`~nexus_trio.upstream.exchange`, the body reader
:mod:`~nexus_trio.upstream.body` and the response parser
:mod:`~nexus_trio.upstream.response_parser`, llhttp through ``httptools``), TLS
(:mod:`~nexus_trio.upstream.tls`), the client that opens a request and translates library
errors once (:mod:`~nexus_trio.upstream.client`), the header rules both ways
(:mod:`~nexus_trio.upstream.headers`), the SSE parser (:mod:`~nexus_trio.upstream.sse`), what
bodies and chunks report (usage, characters: :mod:`~nexus_trio.upstream.chunks`) and the stream
relay (:mod:`~nexus_trio.upstream.stream`, :mod:`~nexus_trio.upstream.relay`). It never routes,
never judges a backend's quality and never renders a client's error: callers decide what an
upstream failure means.
"""
