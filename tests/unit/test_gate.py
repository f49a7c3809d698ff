"""The checks every request passes before a route runs (docs/api.md#routes, docs/api.md#cors)."""

from __future__ import annotations

import pytest

from nexus_trio import errors
from nexus_trio.api import cors, gate


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b"//v1/stats", "//v1/stats"),
        (b"/%2Fv1/stats", "//v1/stats"),
        (b"/v1%2fstats", "/v1/stats"),
        (b"/v1%5cstats", "/v1\\stats"),
        (b"/v1/./stats", "/v1/./stats"),
        (b"/x/../v1/stats", "/x/../v1/stats"),
        (b"/x/%2e%2E/v1/stats", "/x/../v1/stats"),
        (b"/v1/stats/.", "/v1/stats/."),
        (b"/v1/stats/..", "/v1/stats/.."),
        (b"http://gw/v1/stats", "http://gw/v1/stats"),
        (b"*", "*"),
        (b"v1/stats", "v1/stats"),
        (b"/v1//stats", "/v1//stats"),
    ],
)
def test_targets_that_are_not_one_canonical_path_are_refused(raw: bytes, path: str) -> None:
    assert gate.target_problem(raw, path) is not None
    refused = gate.check_request(raw, path, [(b"host", b"gw")], ["*"])
    assert isinstance(refused, errors.InvalidTarget)
    assert refused.status == 400


@pytest.mark.parametrize(
    "raw", [b"/v1/stats", b"/", b"/dashboard/app.js", b"/v1/models/a.b", b"/v1/x%20y"]
)
def test_canonical_targets_pass(raw: bytes) -> None:
    assert gate.target_problem(raw, raw.decode().replace("%20", " ")) is None


def test_content_length_with_transfer_encoding_is_refused_and_closes() -> None:
    headers = [(b"host", b"gw"), (b"content-length", b"5"), (b"transfer-encoding", b"chunked")]
    refused = gate.check_request(b"/v1/chat/completions", "/v1/chat/completions", headers, ["*"])
    assert isinstance(refused, errors.AmbiguousFraming)
    assert refused.headers["Connection"] == "close"
    for one in (headers[:2], [headers[0], headers[2]]):
        assert gate.framing_problem(one) is None


@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        (b"gw.example.com", ["*"], True),
        (b"gw.example.com:8000", ["gw.example.com"], True),
        (b"GW.Example.com", ["gw.example.com"], True),
        (b"evil.test", ["gw.example.com"], False),
        (b"a.corp", ["*.corp"], True),
        (b"corp", ["*.corp"], False),
        (b"xcorp", ["*.corp"], False),
        (b"[::1]:8000", ["[::1]"], True),
        (b"127.0.0.1:8000", ["localhost", "127.0.0.1"], True),
        (None, ["gw"], False),
    ],
)
def test_hosts_are_matched_without_port_and_case(
    host: bytes | None, allowed: list[str], ok: bool
) -> None:
    headers = [] if host is None else [(b"host", host)]
    assert gate.host_allowed(gate.host_of(headers), allowed) is ok
    refused = gate.check_request(b"/health", "/health", headers, allowed)
    assert (refused is None) is ok
    assert ok or isinstance(refused, errors.HostNotAllowed)


def test_access_table_denies_by_default() -> None:
    open_paths = ["/health", "/health/live", "/", "/dashboard", "/dashboard/app.js"]
    assert {gate.access_of(p, metrics_public=False) for p in open_paths} == {gate.Access.OPEN}
    for path in ("/v1/stats", "/v1/models", "/v1/dashboard/events", "/anything", "/healthz"):
        assert gate.access_of(path, metrics_public=False) is gate.Access.KEY
    assert gate.access_of("/metrics", metrics_public=False) is gate.Access.ADMIN
    assert gate.access_of("/metrics", metrics_public=True) is gate.Access.OPEN
    for path in ("/admin/keys", "/admin/keys/team-a/rotate", "/admin/anything"):
        assert gate.access_of(path, metrics_public=True) is gate.Access.ADMIN
    assert gate.access_of("/administer", metrics_public=False) is gate.Access.KEY


@pytest.mark.parametrize(
    ("value", "json"),
    [
        (b"application/json", True),
        (b"application/json; charset=utf-8", True),
        (b"Application/JSON", True),
        (b"application/vnd.api+json", True),
        (b"text/plain", False),
        (b"application/x-www-form-urlencoded", False),
        (b"multipart/form-data; boundary=x", False),
        (None, False),
    ],
)
def test_json_content_types(value: bytes | None, json: bool) -> None:
    headers = [] if value is None else [(b"content-type", value)]
    assert gate.is_json(headers) is json


def test_cors_preflight_and_answers() -> None:
    origin = b"https://app.example.com"
    preflight = [
        (b"origin", origin),
        (b"access-control-request-method", b"POST"),
        (b"access-control-request-headers", b"authorization, content-type"),
    ]
    assert cors.is_preflight("OPTIONS", preflight)
    assert not cors.is_preflight("OPTIONS", preflight[:1])
    assert not cors.is_preflight("POST", preflight)
    assert cors.allowed(origin, ["https://app.example.com"])
    assert cors.allowed(origin, ["*"])
    assert not cors.allowed(origin, [])
    assert not cors.allowed(b"https://evil.test", ["https://app.example.com"])
    assert not cors.allowed(None, ["*"])
    answer = dict(cors.preflight_headers(origin, preflight))
    assert answer[b"access-control-allow-origin"] == origin
    assert answer[b"access-control-allow-headers"] == b"authorization, content-type"
    methods = answer[b"access-control-allow-methods"].split(b", ")
    assert {b"POST", b"PATCH", b"DELETE"} <= set(methods)  # PATCH: the admin API of keys
    bad = [*preflight[:2], (b"access-control-request-headers", b"x\r\ninjected: 1")]
    assert b"access-control-allow-headers" not in dict(cors.preflight_headers(origin, bad))
    exposed = dict(cors.response_headers(origin))[b"access-control-expose-headers"]
    assert b"x-request-id" in exposed
