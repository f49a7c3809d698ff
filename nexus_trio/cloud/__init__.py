"""Cloud dialects: speaking a provider's own API behind the gateway's OpenAI API.

This package owns the translation between the OpenAI chat API that clients speak and a cloud
provider's native API (today: Anthropic's Messages API, :mod:`nexus_trio.cloud.anthropic`):
request bodies, paths and headers on the way out; response bodies, stream events and error
bodies on the way back. Everything here is pure and synchronous — bytes in, bytes out — and
unit-tested without an event loop.

It never touches sockets, timeouts, retries, routing or quality tracking: the attempt path
(:mod:`nexus_trio.api.attempt`) calls it around one upstream exchange, and the stream relay
applies the same deadlines and endings to a translated stream as to any other.
"""
