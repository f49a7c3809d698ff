"""``POST /v1/messages/count_tokens`` (docs/messages-api.md#counting-tokens): how many input
tokens a Messages request holds, without generating anything.

The count is the gateway's character estimate (characters / 4 of the system prompt, the
messages and the tool schemas), and the answer says so in ``X-Nexus-Token-Count: estimate``.
Errors are in Anthropic's envelope, like the Messages route's.
"""

from __future__ import annotations

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from nexus_trio.dialects import messages

COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
_ENCODER = msgspec.json.Encoder()


def register_token_count_route(app: QuartTrio) -> None:
    """Add ``POST /v1/messages/count_tokens`` to ``app``."""

    @app.post(COUNT_TOKENS_PATH)
    async def count_tokens() -> Response:
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)
        messages.chat_request(body)  # the same validation as the Messages route (400s)
        count = messages.count_tokens_estimate(body)
        return Response(
            _ENCODER.encode({"input_tokens": count}),
            content_type="application/json",
            headers={"x-nexus-token-count": "estimate"},
        )
