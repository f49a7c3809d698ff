"""The upstream response parser (llhttp) and request writer: framing, reuse, refusals, bounds.

Every response is parsed whole and again one byte per read, so no rule depends on where the
network splits the bytes.
"""

from __future__ import annotations

import httpx
import pytest

from nexus_trio.upstream.exchange import request_bytes
from nexus_trio.upstream.response_parser import MAX_FIELDS, MAX_HEAD_BYTES, ResponseParser

CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def parse(
    data: bytes, *, step: int | None = None, eof: bool = False, method: str = "POST"
) -> ResponseParser:
    parser = ResponseParser(method)
    step = step or len(data) or 1
    for start in range(0, len(data), step):
        parser.feed(data[start : start + step])
    if eof:
        parser.eof()
    return parser


@pytest.fixture(params=[None, 1], ids=["whole", "byte-by-byte"])
def step(request: pytest.FixtureRequest) -> int | None:
    return request.param  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("response", "body"),
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello", id="length"),
        pytest.param(
            CHUNKED + b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
            b"helloabc",
            id="chunked-with-extension-and-trailer",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
            b"hi",
            id="informational-skipped",
        ),
        pytest.param(b"HTTP/1.1 204 No Content\r\n\r\n", b"", id="no-content"),
        pytest.param(CHUNKED.replace(b"chunked", b"Chunked") + b"0\r\n\r\n", b"", id="case"),
    ],
)
def test_framings_end_cleanly(response: bytes, body: bytes, step: int | None) -> None:
    parser = parse(response, step=step)
    assert (parser.done, parser.reusable) == (True, True)
    assert b"".join(parser.take()) == body
    assert parser.take() == []


def test_head_fields() -> None:
    parser = parse(b"HTTP/1.1 201 Created\r\nX-Thing:  a b \r\nContent-Length: 0\r\n\r\n")
    assert (parser.status, parser.reason, parser.version) == (201, b"Created", b"HTTP/1.1")
    assert parser.headers == [(b"x-thing", b"a b"), (b"content-length", b"0")]


def test_body_framed_by_the_close_ends_at_eof(step: int | None) -> None:
    parser = parse(b"HTTP/1.1 200 OK\r\n\r\nuntil close", step=step)
    assert parser.head_done
    assert not parser.done
    parser.eof()
    assert (parser.done, parser.reusable) == (True, False)
    assert b"".join(parser.take()) == b"until close"


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
        CHUNKED + b"5\r\nhel",
        b"HTTP/1.1 200 OK\r\nContent-",
    ],
    ids=["short-length", "short-chunk", "mid-head"],
)
def test_eof_before_the_end_is_refused(response: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="closed the connection"):
        parse(response, eof=True)


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\n"
        b"Content-Length: 2\r\n\r\nhi",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi garbage",
    ],
    ids=[
        "connection-close",
        "close-in-a-list",
        "http-1.0-keep-alive",
        "http-1.0-close",
        "http-1.0",
        "second-response",
        "garbage-after",
    ],
)
def test_not_reusable(response: bytes) -> None:
    parser = parse(response)
    assert parser.done
    assert not parser.reusable
    assert b"".join(parser.take()) == b"hi"


def test_bytes_after_the_end_in_a_later_read_forbid_reuse() -> None:
    parser = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    assert parser.reusable
    parser.feed(b"x")
    assert not parser.reusable


def test_an_informational_heads_framing_is_not_the_final_ones() -> None:
    parser = parse(
        b"HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\nuntil close",
        eof=True,
    )
    assert parser.done
    assert b"".join(parser.take()) == b"until close"


def test_head_response_ends_with_its_head() -> None:
    parser = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method="HEAD")
    assert parser.done
    assert parser.take() == []
    assert not parser.reusable


@pytest.mark.parametrize(
    ("response", "why"),
    [
        (b"garbage\r\n\r\n", "Invalid HTTP response"),
        (b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", "101"),
        (CHUNKED.replace(b"chunked", b"gzip, chunked") + b"0\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n", "Content"),
        (b"HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 0\r\n\r\n", "Invalid"),
        (CHUNKED + b"zz\r\n", "Invalid HTTP response"),
        (CHUNKED.replace(b"chunked", b"chunked\t") + b"5\r\nhello\r\n0\r\n\r\n", "Transfer"),
        (
            b"HTTP/1.1 199 Misc\r\nContent-Length: 9\r\n\r\nINJECTED!"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            "informational",
        ),
    ],
    ids=[
        "garbage",
        "101",
        "gzip",
        "two-lengths",
        "both-framings",
        "obs-fold",
        "bad-chunk-size",
        "chunked-and-tab",
        "informational-with-a-body",
    ],
)
def test_broken_responses_are_refused(response: bytes, why: str) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match=why):
        parse(response)


@pytest.mark.parametrize(
    ("response", "what"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 3 * MAX_HEAD_BYTES, "head is too long"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * MAX_HEAD_BYTES, "head has over"),
        (CHUNKED + b"5;" + b"e" * 3 * MAX_HEAD_BYTES, "chunk-size line or trailer is too long"),
        (
            CHUNKED + b"0\r\nX-T: " + b"e" * 3 * MAX_HEAD_BYTES,
            "chunk-size line or trailer is too long",
        ),
        (
            CHUNKED + b"0\r\n" + b"X-T: t\r\n" * MAX_HEAD_BYTES,
            "chunk-size line or trailer is too long",
        ),
    ],
    ids=[
        "long-field",
        "many-fields",
        "endless-chunk-size-line",
        "endless-trailer",
        "endless-trailer-section",
    ],
)
def test_unbounded_input_is_refused(response: bytes, what: str) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match=what):
        parse(response, step=8192)


def test_a_head_of_too_many_fields_is_refused() -> None:
    fields = b"".join(b"X-F%d: v\r\n" % index for index in range(MAX_FIELDS))
    assert len(parse(b"HTTP/1.1 204 No Content\r\n" + fields + b"\r\n").headers) == MAX_FIELDS
    with pytest.raises(httpx.RemoteProtocolError, match="fields"):
        parse(b"HTTP/1.1 204 No Content\r\n" + fields + b"X-One-More: v\r\n\r\n")


def test_a_large_body_is_no_head() -> None:
    body = b"x" * 4 * MAX_HEAD_BYTES
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    parser = parse(response, step=8192)
    assert parser.reusable
    assert b"".join(parser.take()) == body


# --- the request -----------------------------------------------------------------------------


def test_request_with_a_sized_body() -> None:
    data, closing = request_bytes(
        "POST", b"/v1/chat?x=1", [(b"host", b"b:1"), (b"content-length", b"2")], b"{}"
    )
    assert data == b"POST /v1/chat?x=1 HTTP/1.1\r\nhost: b:1\r\ncontent-length: 2\r\n\r\n{}"
    assert not closing


def test_streamed_body_goes_as_one_chunk_and_connection_close_is_noted() -> None:
    headers = [(b"Transfer-Encoding", b"chunked"), (b"Connection", b"Close")]
    data, closing = request_bytes("POST", b"/", headers, b"abc")
    assert data.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert closing
    assert request_bytes("POST", b"/", headers, b"")[0].endswith(b"\r\n\r\n0\r\n\r\n")


@pytest.mark.parametrize(
    ("method", "target", "headers", "body"),
    [
        ("POST", b"/", [(b"x-a", b"v\r\nx-injected: 1")], b""),
        ("POST", b"/", [(b"x-a", b"v\nx")], b""),
        ("POST", b"/", [(b"x-a", b"v\x00")], b""),
        ("POST", b"/", [(b"x-a", b" v")], b""),
        ("POST", b"/", [(b"x a", b"v")], b""),
        ("POST", b"/", [(b"x-a:", b"v")], b""),
        ("POST", b"/ HTTP/1.1\r\nx: y", [], b""),
        ("GE T", b"/", [], b""),
        ("POST", b"/", [], b"body without framing"),
        ("POST", b"/", [(b"content-length", b"1"), (b"transfer-encoding", b"chunked")], b"x"),
        ("POST", b"/", [(b"content-length", b"2")], b"{}GET /smuggled HTTP/1.1\r\n\r\n"),
        ("POST", b"/", [(b"content-length", b"2"), (b"content-length", b"2")], b"{}"),
        ("POST", b"/", [(b"content-length", b"+2")], b"{}"),
        ("POST", b"/", [(b"transfer-encoding", b"gzip")], b"{}"),
    ],
    ids=[
        "crlf-in-value",
        "lf-in-value",
        "nul-in-value",
        "leading-space",
        "space-in-name",
        "colon-in-name",
        "target-splits",
        "bad-method",
        "no-framing",
        "two-framings",
        "length-short-of-the-body",
        "two-lengths",
        "signed-length",
        "not-chunked",
    ],
)
def test_requests_that_would_break_http_are_refused(
    method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    with pytest.raises(httpx.LocalProtocolError):
        request_bytes(method, target, headers, body)
