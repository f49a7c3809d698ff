"""The input estimate (docs/spend.md#estimates): what a request reserves, and is charged when no
usage arrives, for its input — at least the body's size / 4, at least its token ids, with a
fixed count per image instead of the image's bytes."""

from __future__ import annotations

import msgspec
import pytest

from nexus_trio.api.analysis import IMAGE_TOKENS, input_estimate, requirements_of
from nexus_trio.api.bodies import RouteKind, decode_view


def estimate(kind: RouteKind, body: dict[str, object] | bytes) -> int:
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return input_estimate(decode_view(kind, data), len(data))


USER = {"role": "user", "content": "hi"}
SCHEMA = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(200)}}


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(
            {"tools": [{"type": "function", "function": {"parameters": SCHEMA}}]}, id="tools"
        ),
        pytest.param(
            {"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}},
            id="schema",
        ),
        pytest.param(
            {
                "messages": [
                    USER,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "function": {
                                    "name": "f",
                                    "arguments": msgspec.json.encode(SCHEMA).decode(),
                                }
                            }
                        ],
                    },
                ]
            },
            id="tool-calls",
        ),
    ],
)
def test_everything_in_a_chat_body_counts_not_only_message_text(extra: dict[str, object]) -> None:
    body = {"model": "m", "messages": [USER], **extra}
    size = len(msgspec.json.encode(body))
    assert size > 5000
    assert estimate(RouteKind.CHAT, body) == size // 4


@pytest.mark.parametrize(
    ("kind", "field"), [(RouteKind.COMPLETIONS, "prompt"), (RouteKind.EMBEDDINGS, "input")]
)
@pytest.mark.parametrize(
    ("ids", "count"),
    [
        ([1] * 20000, 20000),
        ([[1, 2, 3], [4, 5]] * 1000, 5000),
        (b"[  " + b" " * 100 + b"7, 8,9]", 3),  # spaces change nothing
    ],
)
def test_token_ids_count_one_token_each(
    kind: RouteKind, field: str, ids: list[object] | bytes, count: int
) -> None:
    raw = ids if isinstance(ids, bytes) else msgspec.json.encode(ids)
    body = b'{"model": "m", "' + field.encode() + b'": ' + raw + b"}"
    assert estimate(kind, body) == max(count, len(body) // 4)
    assert estimate(kind, body) >= count


def test_text_prompts_count_by_size_with_their_commas_ignored() -> None:
    body = {"model": "m", "prompt": ["a,b,c,d,e,f,g,h" * 10, "1,2,3"]}
    assert estimate(RouteKind.COMPLETIONS, body) == len(msgspec.json.encode(body)) // 4


def test_an_image_counts_a_fixed_allowance_not_its_bytes() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 400_000}}
    text = {"type": "text", "text": "what is this?"}
    one = {"model": "m", "messages": [{"role": "user", "content": [text, image]}]}
    two = {"model": "m", "messages": [{"role": "user", "content": [text, image, image]}]}
    tokens = estimate(RouteKind.CHAT, one)
    assert IMAGE_TOKENS <= tokens < IMAGE_TOKENS + 100
    # The second image adds IMAGE_TOKENS, and its part's own few bytes ({"type": ...}).
    assert IMAGE_TOKENS <= estimate(RouteKind.CHAT, two) - tokens < IMAGE_TOKENS + 20
    view = decode_view(RouteKind.CHAT, msgspec.json.encode(one))
    assert requirements_of(view).needs_vision
