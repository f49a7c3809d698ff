"""The dashboard page: ``GET /`` and ``/dashboard`` (HTML) and ``/dashboard/<asset>`` (CSS, JS).

The files ship inside the package (``static/``, declared as package data) and are read once,
when the app is built. The page itself holds no data: everything it shows comes from
``/v1/dashboard/events``, which inbound auth guards like every ``/v1/`` route, so the page can
be served to anyone. A strict Content-Security-Policy keeps it to the gateway's own origin:
no script, style, image or connection elsewhere.
"""

from __future__ import annotations

from importlib import resources

from quart import Response
from quart_trio import QuartTrio

from nexus_trio import errors

#: The files served under ``/dashboard/``, with their content types.
ASSETS = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
_PAGE = "index.html"

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def read_static(name: str) -> bytes:
    """The bytes of the packaged file ``static/<name>``."""
    return resources.files("nexus_trio.dashboard").joinpath("static", name).read_bytes()


def register_page_routes(app: QuartTrio) -> None:
    """Add the page and its assets to ``app`` (files read now, served from memory)."""
    page = read_static(_PAGE)
    assets = {name: (read_static(name), kind) for name, kind in ASSETS.items()}

    async def index() -> Response:
        return Response(page, content_type="text/html; charset=utf-8", headers=_SECURITY_HEADERS)

    app.add_url_rule("/", "dashboard_root", index, methods=["GET"])
    app.add_url_rule("/dashboard", "dashboard_page", index, methods=["GET"])

    @app.get("/dashboard/<name>")
    async def asset(name: str) -> Response:
        if name not in assets:
            raise errors.NotFound(f"No dashboard file {name!r}.")
        body, kind = assets[name]
        return Response(body, content_type=kind, headers=_SECURITY_HEADERS)
