"""Keys created at run time (docs/keys.md#created-keys, docs/keys.md#admin-api): the admin
API, secrets shown once, created keys enforced like configured ones, expiry, revocation,
rotation, validation, and a restart that keeps them."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio

from nexus_trio import errors
from nexus_trio.config import StateConfig
from nexus_trio.key_store import KeyStore, NewKey
from nexus_trio.keys import CreatedKey, CreatedKeys
from tests.component.client import CHAT, PATH, bearer
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway
from tests.component.test_dashboard import open_stream

CONFIG = """
[health_check]
enabled = false
[state]
dir = "{dir}"
[budget]
hard_limit_action = "reject"
[[backends]]
name = "cloud"
url = "http://cloud.test"
type = "openai"
models = ["m", "gpt"]
[[backends]]
name = "local"
url = "http://local.test"
type = "generic"
priority = 90
models = ["m"]
[[pricing]]
backend = "cloud"
input_usd_per_million = 1000000
output_usd_per_million = 1000000
[[keys]]
name = "boss"
key_env = "BOSS_KEY"
admin = true
[[keys]]
name = "tenant"
key_env = "TENANT_KEY"
"""
ENV = {"BOSS_KEY": "boss", "TENANT_KEY": "tenant"}
ADMIN = bearer("boss")


async def start(make_gateway: Callable[..., Gateway], nursery: trio.Nursery, path: Path) -> Gateway:
    gateway = make_gateway(CONFIG.format(dir=path), env=ENV)

    async def answer(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()  # 3 + 2 tokens: $5 on the cloud

    gateway.upstream.handlers["cloud.test"] = answer
    gateway.upstream.handlers["local.test"] = answer
    await nursery.start(gateway.wiring.keys.run)
    return gateway


async def admin(
    gateway: Gateway, method: str, path: str, body: object = None, **headers: str
) -> Any:
    client = gateway.app.test_client()
    data = b"" if body is None else msgspec.json.encode(body)
    return await client.open(
        path,
        method=method,
        data=data,
        headers={"content-type": "application/json", **(headers or ADMIN)},
    )


@pytest.fixture
async def gw(
    make_gateway: Callable[..., Gateway], nursery: trio.Nursery, tmp_path: Path
) -> Gateway:
    return await start(make_gateway, nursery, tmp_path)


async def create(gateway: Gateway, **settings: object) -> str:
    response = await admin(gateway, "POST", "/admin/keys", settings)
    assert response.status_code == 201, await response.get_data()
    return str((await response.get_json())["key"])


async def test_a_created_key_is_shown_once_and_stored_as_its_digest(
    gw: Gateway, tmp_path: Path
) -> None:
    response = await admin(gw, "POST", "/admin/keys", {"name": "app-1", "metadata": {"team": "x"}})
    body = await response.get_json()
    secret = body["key"]
    assert secret.startswith("nxs-")
    assert len(secret) == 47
    assert (body["name"], body["source"], body["state"]) == ("app-1", "api", "active")
    assert (await gw.post(PATH, CHAT, **bearer(secret))).status_code == 200
    shown = await (await admin(gw, "GET", "/admin/keys/app-1")).get_data()
    listed = await (await admin(gw, "GET", "/admin/keys")).get_data()
    stored = b"".join(path.read_bytes() for path in sorted(tmp_path.glob("keys.sqlite3*")))  # noqa: ASYNC240
    digest = hashlib.sha256(secret.encode()).hexdigest()
    for text in (shown, listed):
        assert secret.encode() not in text
        assert digest.encode() not in text
    assert secret.encode() not in stored
    assert digest.encode() in stored
    names = [(k["name"], k["source"]) for k in msgspec.json.decode(listed)["data"]]
    assert names == [("boss", "config"), ("tenant", "config"), ("app-1", "api")]
    detail = msgspec.json.decode(shown)
    assert detail["spend_usd_this_month"] == 5.0
    assert detail["last_used_at"] is not None


async def test_created_keys_are_enforced_like_configured_ones(gw: Gateway) -> None:
    limited = await create(gw, name="lim", models=["m"], requests_per_minute=2)
    private = await create(gw, name="priv", privacy="restricted")
    capped = await create(gw, name="capped", monthly_budget_usd=5)
    assert (await gw.post(PATH, {**CHAT, "model": "gpt"}, **bearer(limited))).status_code == 403
    assert (await gw.post(PATH, CHAT, **bearer(limited))).status_code == 200
    assert (await gw.post(PATH, CHAT, **bearer(limited))).status_code == 429
    local = await gw.post(PATH, CHAT, **bearer(private))
    assert local.headers["x-nexus-backend"] == "local"
    await gw.post(PATH, {**CHAT, "model": "gpt"}, **bearer(capped))
    over = await gw.post(PATH, {**CHAT, "model": "gpt"}, **bearer(capped))
    assert over.status_code == 429
    assert (await over.get_json())["error"]["code"] == "budget_exceeded"
    tenant = await create(gw, name="t2")
    assert (await admin(gw, "GET", "/admin/keys", **bearer(tenant))).status_code == 403
    boss = await create(gw, name="boss2", admin=True)
    assert (await admin(gw, "GET", "/admin/keys", **bearer(boss))).status_code == 200


async def test_expired_revoked_and_rotated_keys(gw: Gateway) -> None:
    secret = await create(gw, name="short")
    gw.wiring.keys.index.put(
        msgspec.structs.replace(gw.wiring.keys.index.get("short"), expires_at=time.time() - 1)  # type: ignore[type-var]
    )
    expired = await gw.post(PATH, CHAT, **bearer(secret))
    assert expired.status_code == 401
    assert (await expired.get_json())["error"]["code"] == "key_expired"
    old = await create(gw, name="rot")
    rotated = await admin(gw, "POST", "/admin/keys/rot/rotate", {"grace_seconds": 60})
    new = (await rotated.get_json())["key"]
    assert new != old
    assert (await gw.post(PATH, CHAT, **bearer(old))).status_code == 200
    assert (await gw.post(PATH, CHAT, **bearer(new))).status_code == 200
    await admin(gw, "POST", "/admin/keys/rot/rotate", {})
    assert (await gw.post(PATH, CHAT, **bearer(new))).status_code == 401
    revoked = await admin(gw, "DELETE", "/admin/keys/rot")
    assert (await revoked.get_json())["state"] == "revoked"
    again = await admin(gw, "PATCH", "/admin/keys/rot", {"requests_per_minute": 5})
    assert again.status_code == 409
    taken = await admin(gw, "POST", "/admin/keys", {"name": "rot"})
    assert taken.status_code == 409


async def test_a_revoked_key_is_refused_while_its_request_in_flight_finishes(gw: Gateway) -> None:
    secret = await create(gw, name="slow")
    release = trio.Event()

    async def slow(request: httpx.Request, body: bytes) -> httpx.Response:
        await release.wait()
        return completion()

    gw.upstream.handlers["cloud.test"] = slow
    gw.upstream.handlers["local.test"] = slow
    results: list[int] = []
    async with trio.open_nursery() as nursery:

        async def in_flight() -> None:
            results.append((await gw.post(PATH, CHAT, **bearer(secret))).status_code)

        nursery.start_soon(in_flight)
        await trio.testing.wait_all_tasks_blocked()
        assert (await admin(gw, "DELETE", "/admin/keys/slow")).status_code == 200
        assert (await gw.post(PATH, CHAT, **bearer(secret))).status_code == 401
        release.set()
    assert results == [200]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "bad name"}, "name"),
        ({"name": "x", "requests_per_minute": -1}, "requests_per_minute"),
        ({"name": "x", "privacy": "secret"}, "privacy"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"models": ["m"]}, "name"),
    ],
)
async def test_invalid_settings_are_400_naming_the_field(
    gw: Gateway, body: dict[str, object], param: str
) -> None:
    response = await admin(gw, "POST", "/admin/keys", body)
    assert response.status_code == 400
    error = (await response.get_json())["error"]
    assert (error["code"], error["param"]) == ("invalid_value", param)


async def test_names_of_the_file_and_reserved_names_are_refused(gw: Gateway) -> None:
    for name in ("boss", "default", "other"):
        assert (await admin(gw, "POST", "/admin/keys", {"name": name})).status_code == 409
    assert (await admin(gw, "PATCH", "/admin/keys/tenant", {"admin": True})).status_code == 409
    assert (await admin(gw, "DELETE", "/admin/keys/nobody")).status_code == 404
    assert (await admin(gw, "GET", "/admin/keys", **bearer("tenant"))).status_code == 403


async def test_a_restart_and_a_reload_keep_created_keys(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        first = await start(make_gateway, nursery, tmp_path)
        secret = await create(first, name="kept", requests_per_minute=7)
        revoked = await create(first, name="gone")
        await admin(first, "DELETE", "/admin/keys/gone")
        first.wiring.apply_config(first.wiring.config)
        assert (await first.post(PATH, CHAT, **bearer(secret))).status_code == 200
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        second = await start(make_gateway, nursery, tmp_path)
        response = await second.post(PATH, CHAT, **bearer(secret))
        assert response.headers["x-ratelimit-limit-requests"] == "7"
        assert (await second.post(PATH, CHAT, **bearer(revoked))).status_code == 401
        nursery.cancel_scope.cancel()


async def test_every_request_is_attributed_and_the_key_label_is_bounded(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    secret = await create(gw, name="attributed")
    body = {**CHAT, "user": "end-user-7"}
    await gw.post(PATH, body, **bearer(secret), **{"user-agent": "my-app/1.0"})
    await gw.post(PATH, {**CHAT, "user": {"not": "a string"}}, **bearer(secret))
    lines = [r.access for r in caplog.records if r.name == "nexus_trio.access"]  # type: ignore[attr-defined]
    assert (lines[0].key, lines[0].user_agent, lines[0].user) == (
        "attributed",
        "my-app/1.0",
        "end-user-7",
    )
    assert (lines[1].key, lines[1].user) == ("attributed", None)
    metrics = gw.wiring.metrics
    labels = {"model": "m", "backend": "cloud", "code": "2xx", "stream": "false"}
    assert (
        metrics.registry.get_sample_value("nexus_requests_total", {**labels, "key": "attributed"})
        == 2
    )
    metrics.key_label.limit = 1  # "attributed" has the only value of its own
    late = await create(gw, name="late")
    await gw.post(PATH, CHAT, **bearer(late))
    assert (
        metrics.registry.get_sample_value("nexus_requests_total", {**labels, "key": "other"}) == 1
    )
    assert (
        metrics.registry.get_sample_value("nexus_requests_total", {**labels, "key": "late"}) is None
    )


async def test_the_dashboards_keys_panel_is_for_admins_only(
    gw: Gateway, nursery: trio.Nursery
) -> None:
    secret = await create(gw, name="panel", requests_per_minute=5, monthly_budget_usd=9)
    await gw.post(PATH, {**CHAT, "model": "gpt"}, **bearer(secret))
    await admin(gw, "DELETE", "/admin/keys/panel")
    tenant = await create(gw, name="viewer")
    admin_view = await open_stream(nursery, gw, [(b"authorization", b"Bearer boss")])
    tenant_view = await open_stream(nursery, gw, [(b"authorization", f"Bearer {tenant}".encode())])
    with trio.fail_after(5):
        panel = (await admin_view.next_named("snapshot"))["keys"]
        assert (await tenant_view.next_named("snapshot"))["keys"] is None
    assert panel["total"] == 4
    rows = {row["name"]: row for row in panel["keys"]}
    assert [rows[name]["source"] for name in ("boss", "tenant", "panel", "viewer")] == [
        "config",
        "config",
        "api",
        "api",
    ]
    assert (rows["panel"]["state"], rows["panel"]["requests_per_minute"]) == ("revoked", 5)
    assert (rows["panel"]["spend_usd"], rows["panel"]["monthly_budget_usd"]) == (5.0, 9.0)
    assert rows["panel"]["last_used_at"] is not None
    assert secret not in str(panel)


async def test_processes_sharing_the_state_dir_take_in_each_others_keys(
    make_gateway: Callable[..., Gateway], nursery: trio.Nursery, tmp_path: Path
) -> None:
    one = await start(make_gateway, nursery, tmp_path)  # no keys.sqlite3 yet
    two = await start(make_gateway, nursery, tmp_path)
    secret = await create(one, name="sibling")
    await two.wiring.keys.reread()  # what its service does every sync_interval_seconds
    assert (await two.post(PATH, CHAT, **bearer(secret))).status_code == 200
    await admin(two, "DELETE", "/admin/keys/sibling")
    await one.wiring.keys.reread()
    assert (await one.post(PATH, CHAT, **bearer(secret))).status_code == 401


async def test_every_change_is_logged_with_who_made_it_and_never_a_secret(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nexus_trio.keys")
    secret = await create(gw, name="app", admin=True)
    await admin(gw, "PATCH", "/admin/keys/app", {"models": ["m"], "requests_per_minute": 5})
    rotated = await admin(gw, "POST", "/admin/keys/app/rotate", {"grace_seconds": 60})
    new = (await rotated.get_json())["key"]
    await admin(gw, "DELETE", "/admin/keys/app", **bearer(new))
    lines = [r.getMessage() for r in caplog.records if r.name == "nexus_trio.keys"]
    assert lines == [  # the test client has no peer address: "-"
        "key app created by key boss from - (admin: yes)",
        "key app changed (models, requests_per_minute) by key boss from - (admin: yes)",
        "key app rotated (grace 60 s) by key boss from - (admin: yes)",
        "key app revoked by key app from - (admin: yes)",
    ]
    for text in (secret, new, hashlib.sha256(secret.encode()).hexdigest()):
        assert text not in caplog.text


async def test_a_shared_store_down_at_start_up_is_logged(
    tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    state = StateConfig(dir=str(tmp_path), store="redis://127.0.0.1:1/0")
    store = KeyStore(state, CreatedKeys(), configured=set)
    await nursery.start(store.run)
    assert "key changes are refused until it is back" in caplog.text
    with pytest.raises(errors.ServiceUnavailable):
        await store.create(NewKey(name="app"))
    nursery.cancel_scope.cancel()


async def test_a_created_key_never_reaches_a_forward_authorization_backend(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    """The file names no key (so forward_authorization is allowed), but created keys (from the
    state directory or the fleet's store) turn inbound authentication on."""
    gateway = make_gateway(
        f'[health_check]\nenabled = false\n[state]\ndir = "{tmp_path}"\n'
        '[[backends]]\nname = "own"\nurl = "http://own.test"\ntype = "generic"\n'
        'models = ["m"]\nforward_authorization = true\n'
    )
    seen: list[httpx.Headers] = []

    async def answer(request: httpx.Request, body: bytes) -> httpx.Response:
        seen.append(request.headers)
        return completion()

    gateway.upstream.handlers["own.test"] = answer
    secret = "nxs-created-secret"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    gateway.wiring.keys.index.put(
        CreatedKey(name="app", sha256=digest, created_at=1.0, updated_at=1.0)
    )
    assert (await gateway.post(PATH, CHAT)).status_code == 401
    assert (await gateway.post(PATH, CHAT, **bearer(secret))).status_code == 200
    [headers] = seen
    assert "authorization" not in headers
    assert secret not in str(headers.raw)
