"""The chunked-body decoder (nexus_trio.upstream.chunked): the same body as h11 decodes from the
same bytes however they are split, the end and what follows it, and broken framing refused."""

from __future__ import annotations

import itertools

import h11
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_trio.upstream.chunked import MAX_LINE_BYTES, ChunkedDecoder

HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


def frame(chunks: list[bytes], extension: bytes, trailers: list[bytes]) -> bytes:
    """A chunked body: each chunk with its size line (the extension on each), the last chunk,
    the trailer lines and the empty line."""
    out = b"".join(b"%x%b\r\n%b\r\n" % (len(c), extension, c) for c in chunks if c)
    return out + b"0\r\n" + b"".join(t + b"\r\n" for t in trailers) + b"\r\n"


def h11_body(framed: bytes) -> bytes:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(HEAD + framed)
    assert type(client.next_event()) is h11.Response
    body = b""
    while type(event := client.next_event()) is h11.Data:
        body += event.data
    assert type(event) is h11.EndOfMessage
    return body


def decode(framed: bytes, cuts: list[int]) -> tuple[bytes, ChunkedDecoder]:
    decoder = ChunkedDecoder()
    body = b""
    edges = [0, *sorted({c % (len(framed) + 1) for c in cuts}), len(framed)]
    for start, end in itertools.pairwise(edges):
        body += decoder.feed(framed[start:end])
    return body, decoder


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=40), max_size=6),
    extension=st.sampled_from([b"", b";name=value", b" \t"]),
    trailers=st.lists(st.sampled_from([b"x-usage: 1", b"etag: abc"]), max_size=2),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_same_body_as_h11_however_the_bytes_are_split(
    chunks: list[bytes], extension: bytes, trailers: list[bytes], cuts: list[int]
) -> None:
    framed = frame(chunks, extension, trailers)
    body, decoder = decode(framed, cuts)
    assert body == h11_body(framed) == b"".join(chunks)
    assert decoder.done
    assert decoder.trailing == b""


def test_not_done_until_the_empty_line_and_bytes_after_it_are_trailing() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"5\r\nhello\r\n0\r\n") == b"hello"
    assert not decoder.done
    assert decoder.feed(b"\r\nHTTP/1.1 200 OK") == b""
    assert decoder.done
    assert decoder.trailing == b"HTTP/1.1 200 OK"


def test_a_chunk_is_handed_over_as_its_bytes_arrive() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"9\r\ndata:") == b"data:"
    assert decoder.feed(b" one\r\n") == b" one"
    assert not decoder.done


@pytest.mark.parametrize(
    "framed",
    [
        pytest.param(b"zz\r\nhello\r\n", id="size-not-hex"),
        pytest.param(b"5\r\nhelloXY", id="no-crlf-after-data"),
        pytest.param(b"123456789012345678901\r\n", id="size-over-20-digits"),
        pytest.param(b"5" * (MAX_LINE_BYTES + 1), id="size-line-too-long"),
        pytest.param(b"0\r\n" + b"x: y\r\n" * (MAX_LINE_BYTES // 4), id="trailer-too-long"),
    ],
)
def test_broken_framing_is_refused(framed: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        ChunkedDecoder().feed(framed)
