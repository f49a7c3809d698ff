"""``[tracing]``: OpenTelemetry traces of proxy requests, exported over OTLP/HTTP
(docs/operations.md#tracing). Part of the configuration schema; import it from
``nexus_trio.config``.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

import msgspec
import msgspec.structs

from nexus_trio.config.decoding import InvalidKey

#: The OTLP/HTTP path of traces, added to an endpoint given without a path.
TRACES_PATH = "/v1/traces"
#: A service name: printable ASCII, as a resource attribute shows it everywhere.
_SERVICE_NAME = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,127}")


class TracingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[tracing]`` (docs/configuration.md#sections): off without ``otlp_endpoint``.

    ``sample_ratio`` applies on reload; the other keys are read at start-up (a change needs a
    restart). The endpoint is kept with its path: ``/v1/traces``
    when it was given without one.
    """

    #: The collector's OTLP/HTTP traces URL (``http://host:4318`` or ``…/v1/traces``); None = off.
    otlp_endpoint: str | None = None
    #: The share of requests without a sampled ``traceparent`` that are traced (0 to 1).
    sample_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    #: The ``service.name`` resource attribute of every span.
    service_name: str = "nexus-trio"
    #: Traced requests waiting for export at most; more are dropped (and counted).
    max_queued_requests: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 2048

    def __post_init__(self) -> None:
        if not _SERVICE_NAME.fullmatch(self.service_name):
            raise InvalidKey(
                "service_name",
                "service_name must be 1 to 128 printable ASCII characters, "
                f"got {self.service_name[:40]!r}",
            )
        if self.otlp_endpoint is not None:
            msgspec.structs.force_setattr(self, "otlp_endpoint", _traces_url(self.otlp_endpoint))

    @property
    def enabled(self) -> bool:
        """Whether requests are traced at all."""
        return self.otlp_endpoint is not None


def _traces_url(url: str) -> str:
    """``url`` checked, with ``/v1/traces`` as its path when it has none.

    Raises:
        InvalidKey: not an http(s) URL with a host and a valid port, a query or fragment, or a
            password or user in it.
    """
    parts = urlsplit(url)
    shown = url
    if "@" in parts.netloc:  # a user alone may be a token too (sent as Basic auth)
        shown = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
    problem = None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problem = f"must be an http:// or https:// URL with a host, got {shown!r}"
    elif "@" in parts.netloc:
        problem = (
            f"must not hold a password or user ({shown!r}): give the collector's credentials "
            "in OTEL_EXPORTER_OTLP_TRACES_HEADERS"
        )
    elif parts.query or parts.fragment:
        problem = f"must not have a query or fragment: {shown!r}"
    else:
        try:
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            problem = f"has an invalid port: {shown!r}"
    if problem is not None:
        raise InvalidKey("otlp_endpoint", f"otlp_endpoint {problem}")
    return url.rstrip("/") + TRACES_PATH if parts.path in ("", "/") else url
