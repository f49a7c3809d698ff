"""The admin listener's configuration and which paths each listener serves
(docs/operations.md#admin-listener)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_trio.api import gate
from nexus_trio.asgi.listener import Listener
from nexus_trio.config import admin_address, parse_config
from nexus_trio.dashboard.mount import EVENTS_PATH
from nexus_trio.errors import ConfigError
from nexus_trio.runtime.supervisor import restart_required


def admin(text: str) -> str:
    return f"[admin]\n{text}\n"


@pytest.mark.parametrize(
    ("listen", "address"),
    [("127.0.0.1:9100", ("127.0.0.1", 9100)), ("[::1]:0", ("::1", 0)), ("gw:1", ("gw", 1))],
)
def test_listen_is_host_and_port(listen: str, address: tuple[str, int]) -> None:
    config = parse_config(admin(f'listen = "{listen}"'))
    assert admin_address(config.admin, {}) == address


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.1:65536", ":9100", "a b:1", "::1:80"])
def test_a_listen_that_is_not_host_and_port_is_refused(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"HOST:PORT.*\$\.admin\.listen"):
        parse_config(admin(f'listen = "{listen}"'))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("only = true", "only"),
        ('port_offset_env = "NEXUS_INSTANCE"', "port_offset_env"),
        ('listen = "127.0.0.1:0"\nport_offset_env = "NEXUS_INSTANCE"', "port_offset_env"),
        ('listen = "127.0.0.1:9100"\nport_offset_env = "NEXUS INSTANCE"', "port_offset_env"),
    ],
)
def test_settings_that_make_no_sense_are_refused(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"\$\.admin\.{key}"):
        parse_config(admin(text))


def test_the_port_follows_the_instance() -> None:
    config = parse_config(
        admin('listen = "127.0.0.1:9100"\nport_offset_env = "NEXUS_INSTANCE"')
    ).admin
    assert admin_address(config, {"NEXUS_INSTANCE": "2"}) == ("127.0.0.1", 9102)
    assert admin_address(config, {"NEXUS_INSTANCE": " 0 "}) == ("127.0.0.1", 9100)
    with pytest.raises(ConfigError, match=r"\$NEXUS_INSTANCE is not set"):
        admin_address(config, {})
    for bad in ("x", "-1", "1.5", "56436", "123456"):
        with pytest.raises(ConfigError, match=r"admin\.port_offset_env.*whole number"):
            admin_address(config, {"NEXUS_INSTANCE": bad})


def test_without_listen_there_is_no_admin_listener() -> None:
    assert admin_address(parse_config("").admin, {"NEXUS_INSTANCE": "1"}) is None


ADMIN_ROUTES = [
    ("GET", "/metrics"),
    ("GET", "/v1/stats"),
    ("GET", "/"),
    ("GET", "/dashboard"),
    ("GET", "/dashboard/app.js"),
    ("GET", EVENTS_PATH),
    ("GET", "/admin/keys"),
    ("POST", "/admin/models/x/drain"),
]
PUBLIC_ROUTES = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/messages"),
    ("GET", "/v1/models"),
    ("GET", "/v1/responses/resp_1"),
    ("GET", "/unknown"),
    ("GET", "/adminx"),
]
PROBES = [("GET", "/health"), ("GET", "/health/live"), ("HEAD", "/")]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES + PUBLIC_ROUTES + PROBES)
def test_which_listener_serves_which_path(method: str, path: str) -> None:
    is_admin, is_probe = (method, path) in ADMIN_ROUTES, (method, path) in PROBES
    assert gate.listener_serves(Listener.SHARED, method, path)
    assert gate.listener_serves(Listener.ADMIN, method, path) == (is_admin or is_probe)
    assert gate.listener_serves(Listener.PUBLIC, method, path) == (not is_admin)


def test_the_admin_section_needs_a_restart() -> None:
    old = parse_config("")
    new = parse_config(admin('listen = "127.0.0.1:9100"\nonly = true'))
    assert restart_required(old, new) == ["admin.listen", "admin.only"]


def test_the_template_unit_gives_each_instance_its_number() -> None:
    unit = Path(__file__).resolve().parents[2] / "systemd" / "nexus-trio@.service"
    assert "\nEnvironment=NEXUS_INSTANCE=%i\n" in unit.read_text()
