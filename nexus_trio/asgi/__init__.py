"""ASGI primitives shared by the API and the dashboard (docs/api.md#http-api): below both.

What it owns: the per-request :class:`~nexus_trio.asgi.context.RequestContext`, the
:class:`~nexus_trio.asgi.reply.Reply` value with the one renderer of every error
(:func:`~nexus_trio.asgi.reply.error_reply`), and sending a reply with the headers every answer
carries (:func:`~nexus_trio.asgi.sending.send_reply`), writing a streamed body's chunks
straight to hypercorn's socket (:mod:`~nexus_trio.asgi.direct_writer`), watching for clients
that go away (:mod:`~nexus_trio.asgi.disconnects`), marking the listener a request came through
(:mod:`~nexus_trio.asgi.listener`) and the client's address behind trusted proxies
(:mod:`~nexus_trio.asgi.client_address`). It never routes, authorises or counts a
request: it knows nothing of the gateway's services.
"""
