"""The incremental SSE parser: WHATWG line rules, byte-exact blocks, any chunking."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_trio.errors import BadUpstreamResponse
from nexus_trio.upstream.sse import SSEEvent, SSEParser

BOM = b"\xef\xbb\xbf"

Fields = tuple[str | None, str | None, str | None]

#: A stream with every feature: BOM, comment block, CRLF, lone CR, mixed endings, extra blank
#: lines, multi-line data, event/id, bare field, unknown field, [DONE].
MIXED = (
    BOM
    + b": ping\n\n"
    + b'data: {"a":1}\r\n\r\n'
    + b"\n\r\n"
    + b"event: update\rid: 7\rdata: one\rdata:two\r\r"
    + b"retry: 10\nfoo: bar\r\ndata\n\r"
    + b"data: [DONE]\r\n\n"
)
MIXED_FIELDS: list[Fields] = [
    (None, None, None),
    ('{"a":1}', None, None),
    ("one\ntwo", "update", "7"),
    ("", None, None),
    ("[DONE]", None, None),
]


def parse(chunks: Iterable[bytes], **kwargs: int) -> tuple[list[SSEEvent], SSEParser]:
    parser = SSEParser(**kwargs)
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events, parser


def fields(events: Iterable[SSEEvent]) -> list[Fields]:
    return [(event.data, event.event, event.id) for event in events]


def split(stream: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = [0, *sorted(cuts), len(stream)]
    return [stream[a:b] for a, b in pairwise(points)]


def assert_same_raw(chunked: list[SSEEvent], whole: list[SSEEvent]) -> None:
    """``raw`` concatenates the same, but for the "\n" of a final "\r\n" cut in two.

    That "\n" would start the next block's prefix, but there is no next block.
    """
    joined = b"".join(event.raw for event in chunked)
    expected = b"".join(event.raw for event in whole)
    if joined != expected:
        assert expected.endswith(b"\r\n")
        assert joined == expected[:-1]


def test_one_chunk_with_several_events() -> None:
    stream = b"data: a\n\ndata: b\n\ndata: [DONE]\n\n"
    events, parser = parse([stream])
    assert events == [
        SSEEvent(b"data: a\n\n", "a"),
        SSEEvent(b"data: b\n\n", "b"),
        SSEEvent(b"data: [DONE]\n\n", "[DONE]"),
    ]
    assert [event.is_done for event in events] == [False, False, True]
    assert parser.buffered == 0


def test_mixed_stream_one_shot() -> None:
    events, parser = parse([MIXED])
    assert fields(events) == MIXED_FIELDS
    assert b"".join(event.raw for event in events) == MIXED
    assert events[0].raw == BOM + b": ping\n\n"
    assert events[2].raw == b"\n\r\nevent: update\rid: 7\rdata: one\rdata:two\r\r"
    assert parser.buffered == 0


def test_every_two_and_three_way_split_matches_one_shot() -> None:
    for i in range(len(MIXED) + 1):
        for j in range(i, len(MIXED) + 1):
            events, parser = parse(split(MIXED, [i, j]))
            assert fields(events) == MIXED_FIELDS, (i, j)
            assert b"".join(event.raw for event in events) == MIXED, (i, j)
            assert parser.buffered == 0


def test_split_without_cr_keeps_every_raw() -> None:
    stream = b": hi\n\ndata: a\ndata: b\n\n\n\nevent: e\ndata: c\n\n"
    whole, _ = parse([stream])
    for i in range(len(stream) + 1):
        assert parse(split(stream, [i]))[0] == whole, i


def test_byte_by_byte() -> None:
    events, parser = parse(MIXED[i : i + 1] for i in range(len(MIXED)))
    assert fields(events) == MIXED_FIELDS
    assert b"".join(event.raw for event in events) == MIXED
    assert parser.buffered == 0


def test_long_event_byte_by_byte() -> None:
    stream = b"data: " + b"x" * 50_000 + b"\r\n\r\n"
    events, _ = parse(stream[i : i + 1] for i in range(len(stream)))
    assert fields(events) == [("x" * 50_000, None, None)]


def test_crlf_split_inside_block() -> None:
    events, _ = parse([b"data: a\r", b"\ndata: b\r\n\r\n"])
    assert events == [SSEEvent(b"data: a\r\ndata: b\r\n\r\n", "a\nb")]


def test_crlf_split_after_block_end_returns_event_at_once() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\n\r") == [SSEEvent(b"data: a\r\n\r", "a")]
    assert parser.feed(b"\n") == []  # the rest of "\r\n": no blank line, no event
    assert parser.buffered == 0
    assert parser.feed(b"data: b\r\n\r\n") == [SSEEvent(b"\ndata: b\r\n\r\n", "b")]


def test_crlf_split_after_last_block() -> None:
    stream = b": a\r\n\r\n"
    events, parser = parse([stream[:-1], stream[-1:]])
    assert events == [SSEEvent(stream[:-1])]
    assert parser.buffered == 0


def test_lone_cr_line_ends() -> None:
    events, _ = parse([b"event: x\rdata: a\rdata: b\r\rdata: c\r\r"])
    assert events == [
        SSEEvent(b"event: x\rdata: a\rdata: b\r\r", "a\nb", "x"),
        SSEEvent(b"data: c\r\r", "c"),
    ]


def test_cr_is_not_a_blank_line_before_lf() -> None:
    # "\r\n" is one line end: "data: a\r\n" then "data: b" is one block, not two.
    events, parser = parse([b"data: a\r\ndata: b\r\n"])
    assert events == []
    assert parser.buffered == len(b"data: a\r\ndata: b\r\n")


def test_multi_line_data_keeps_empty_lines() -> None:
    events, _ = parse([b"data: a\ndata:\ndata\ndata: b\n\n"])
    assert fields(events) == [("a\n\n\nb", None, None)]


def test_comment_only_block_is_returned() -> None:
    events, _ = parse([b": ping\n\n:\n\ndata: a\n: inside\n\n"])
    assert events == [
        SSEEvent(b": ping\n\n"),
        SSEEvent(b":\n\n"),
        SSEEvent(b"data: a\n: inside\n\n", "a"),
    ]
    assert [event.data is None for event in events] == [True, True, False]


def test_event_and_id_fields_last_wins() -> None:
    events, _ = parse([b"event: a\nevent: b\nid: 1\nid: 2\n\nevent: only\n\n"])
    assert fields(events) == [(None, "b", "2"), (None, "only", None)]


def test_id_containing_nul_is_ignored() -> None:
    events, _ = parse([b"id: 1\nid: 2\x003\ndata: x\n\n"])
    assert fields(events) == [("x", None, "1")]


def test_field_without_colon_has_empty_value() -> None:
    events, _ = parse([b"data\nevent\nid\n\n"])
    assert fields(events) == [("", "", "")]


@pytest.mark.parametrize(
    ("line", "value"),
    [(b"data:x", "x"), (b"data: x", "x"), (b"data:  x", " x"), (b"data: ", ""), (b"data:", "")],
)
def test_only_one_leading_space_is_stripped(line: bytes, value: str) -> None:
    events, _ = parse([line + b"\n\n"])
    assert fields(events) == [(value, None, None)]


def test_colon_in_value_is_kept() -> None:
    events, _ = parse([b'data: {"a": "b:c"}\n\n'])
    assert fields(events) == [('{"a": "b:c"}', None, None)]


def test_unknown_fields_are_ignored_but_kept_in_raw() -> None:
    stream = b"retry: 1000\nfoo: bar\nDATA: no\ndata: yes\n\n"
    events, _ = parse([stream])
    assert events == [SSEEvent(stream, "yes")]


def test_bom_is_skipped_at_start_only() -> None:
    events, _ = parse([BOM + b"data: a\n\n" + BOM + b"data: b\n\n"])
    # The second BOM is part of a field name ("\ufeffdata"), an unknown field.
    assert events == [SSEEvent(BOM + b"data: a\n\n", "a"), SSEEvent(BOM + b"data: b\n\n")]


def test_bom_split_across_chunks() -> None:
    parser = SSEParser()
    assert parser.feed(BOM[:1]) == []
    assert parser.feed(BOM[1:2]) == []
    assert parser.buffered == 0
    assert parser.feed(BOM[2:] + b"data: a\n\n") == [SSEEvent(BOM + b"data: a\n\n", "a")]


def test_partial_bom_that_is_not_a_bom() -> None:
    events, _ = parse([b"\xef", b"data: a\n\n"])
    assert fields(events) == [(None, None, None)]  # the field name is "\ufffddata"


def test_extra_blank_lines_make_no_events_and_start_the_next_raw() -> None:
    events, parser = parse([b"\n\r\ndata: a\n\n\n\r\n\rdata: b\n\n\n\n"])
    assert events == [
        SSEEvent(b"\n\r\ndata: a\n\n", "a"),
        SSEEvent(b"\n\r\n\rdata: b\n\n", "b"),
    ]
    assert parser.buffered == 0  # trailing blank lines are not a truncated event


def test_buffered_counts_the_incomplete_block() -> None:
    parser = SSEParser()
    assert parser.feed(b"\n\ndata: a") == []
    assert parser.buffered == len(b"data: a")
    assert parser.feed(b"bc\n") == []
    assert parser.buffered == len(b"data: abc\n")
    assert parser.feed(b"\ndata") == [SSEEvent(b"\n\ndata: abc\n\n", "abc")]
    assert parser.buffered == len(b"data")


def test_incomplete_block_past_limit_raises_without_content() -> None:
    parser = SSEParser(max_event_bytes=64)
    parser.feed(b"data: secret")
    with pytest.raises(BadUpstreamResponse) as info:
        parser.feed(b"x" * 60)
    assert str(info.value) == "upstream SSE event exceeds 64 bytes"
    assert info.value.code == "bad_upstream_response"


def test_complete_block_past_limit_raises() -> None:
    block = b"data: " + b"x" * 10 + b"\n\n"
    assert parse([block], max_event_bytes=len(block))[0] == [SSEEvent(block, "x" * 10)]
    with pytest.raises(BadUpstreamResponse):
        parse([block], max_event_bytes=len(block) - 1)
    with pytest.raises(BadUpstreamResponse):
        parse([block[:-1], block[-1:]], max_event_bytes=len(block) - 1)


def test_endless_blank_lines_are_bounded() -> None:
    parser = SSEParser(max_event_bytes=100)
    for _ in range(100):
        assert parser.feed(b"\n") == []
    assert parser.buffered == 0
    with pytest.raises(BadUpstreamResponse):
        parser.feed(b"\n")


def test_garbage_never_crashes() -> None:
    stream = b"data: \xff\xfe\x00\xc3\n\xe2\x82\n\x00\x00: \xff\n\n\xff\xff\n\nid: \x80\n\n"
    events, _ = parse([stream])
    assert fields(events) == [
        ("\ufffd\ufffd\x00\ufffd", None, None),
        (None, None, None),
        (None, None, "\ufffd"),
    ]
    assert b"".join(event.raw for event in events) == stream


def test_empty_chunks_are_harmless() -> None:
    events, parser = parse([b"", b"data: a", b"", b"\n\n", b""])
    assert events == [SSEEvent(b"data: a\n\n", "a")]
    assert parser.buffered == 0


# Property tests ----------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=8)
_ENDING = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def _line(draw: st.DrawFn) -> tuple[bytes, str | None, str | None]:
    """A non-blank line, and the field (``data``/``event``/``id``) and value it sets."""
    kind = draw(st.sampled_from(["data", "event", "id", "bare", "comment", "unknown"]))
    if kind == "comment":
        return b":" + draw(_TEXT).encode(), None, None
    if kind == "unknown":
        return draw(st.sampled_from([b"retry: 10", b"foo:bar", b"Data: x", b"x"])), None, None
    if kind == "bare":
        name = draw(st.sampled_from(["data", "event", "id"]))
        return name.encode(), name, ""
    value = draw(_TEXT)
    space = draw(st.booleans())
    line = f"{kind}:{' ' if space else ''}{value}".encode()
    if not space and value.startswith(" "):
        value = value[1:]
    if kind == "id" and "\0" in value:
        return line, None, None
    return line, kind, value


@st.composite
def _stream(draw: st.DrawFn) -> tuple[bytes, bytes, list[Fields]]:
    """A valid stream, its bytes up to the end of the last block, and the expected fields."""
    out = [BOM] if draw(st.booleans()) else []
    last_ending = b""

    def end_line(blank: bool) -> None:
        nonlocal last_ending
        # A blank line "\n" right after a "\r" would merge with it into one "\r\n".
        choices = (
            _ENDING.filter(lambda e: e != b"\n") if blank and last_ending == b"\r" else _ENDING
        )
        last_ending = draw(choices)
        out.append(last_ending)

    expected: list[Fields] = []
    for _ in range(draw(st.integers(1, 5))):
        for _ in range(draw(st.integers(0, 2))):
            end_line(blank=True)
        data: list[str] = []
        got: dict[str, str] = {}
        for _ in range(draw(st.integers(1, 4))):
            line, name, value = draw(_line())
            out.append(line)
            end_line(blank=False)
            if name == "data" and value is not None:
                data.append(value)
            elif name is not None and value is not None:
                got[name] = value
        end_line(blank=True)
        expected.append(("\n".join(data) if data else None, got.get("event"), got.get("id")))
    body = b"".join(out)
    for _ in range(draw(st.integers(0, 2))):
        end_line(blank=True)
    return b"".join(out), body, expected


@settings(max_examples=200, deadline=None)
@given(_stream(), st.data())
def test_random_streams_any_chunking(
    generated: tuple[bytes, bytes, list[Fields]], draw: st.DataObject
) -> None:
    stream, body, expected = generated
    cuts = draw.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    whole, _ = parse([stream])
    assert fields(whole) == expected
    assert b"".join(event.raw for event in whole) == body
    events, parser = parse(split(stream, cuts))
    assert fields(events) == expected
    assert_same_raw(events, whole)
    assert parser.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.data())
def test_random_bytes_any_chunking(stream: bytes, draw: st.DataObject) -> None:
    cuts = draw.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    whole, whole_parser = parse([stream])
    events, parser = parse(split(stream, cuts))
    assert fields(events) == fields(whole)
    assert_same_raw(events, whole)
    assert parser.buffered == whole_parser.buffered


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (b"event: ping\ndata: {}\n\n", ("{}", "ping", None)),
        (b"event:  two\ndata: a: b\n\n", ("a: b", " two", None)),
        (b"event: x\ndata: a\ndata: b\n\n", ("a\nb", "x", None)),
        (b"event: x\nid: 7\n\n", (None, "x", "7")),
        (b"event: x\ndata: a\nevent: y\n\n", ("a", "y", None)),
        (b"event: x\n: note\ndata: a\n\n", ("a", "x", None)),
    ],
)
def test_an_event_line_then_data_lines(block: bytes, expected: Fields) -> None:
    """Anthropic's usual block, ``event:`` then one ``data:`` line, and its neighbours."""
    events, _ = parse([block])
    assert fields(events) == [expected]
    assert events[0].raw == block
