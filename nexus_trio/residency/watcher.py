"""The residency watcher: one background task per backend that keeps its residency current
(docs/routing.md#residency).

Theory of operation. :meth:`ResidencyWatcher.run` keeps one task per backend whose type tells
residency (``llamacpp`` and ``ollama``), keyed by identity (name, url, type): a reload
(:meth:`ResidencyWatcher.backends_changed`) cancels the tasks of identities gone and starts
those of new ones. Each task asks its server — llama.cpp ``GET /v1/models``, Ollama
``GET /api/ps`` — under ``[health_check] timeout_seconds`` and replaces what the registry
knows. A llama.cpp router is then followed on ``GET /models/sse``: each change applies as it
arrives (within a second); the model list is read again once the stream is open, so nothing
between the two is missed. When the stream ends, it reconnects after a second; a server that
does not answer is asked again each ``interval_seconds``. Nothing here runs on the request
path: routing reads what the last report left in the registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import msgspec
import trio

from nexus_trio import errors
from nexus_trio.config import HealthCheckConfig
from nexus_trio.dialects import dialect_for
from nexus_trio.health.probe import fetch
from nexus_trio.registry import Backend, ModelResidency, Registry
from nexus_trio.residency import reports
from nexus_trio.upstream.sse import SSEParser

log = logging.getLogger("nexus_trio.residency")

_Identity = tuple[str, str, str]
#: Backend types whose servers tell which models they hold.
WATCHED_TYPES = frozenset({"llamacpp", "ollama"})
#: Wait before reopening a residency stream that ended.
RECONNECT_SECONDS = 1.0
#: Largest residency event accepted (a llama.cpp ``loaded`` event describes the model).
MAX_EVENT_BYTES = 256 * 1024


class ResidencyWatcher:
    """Keeps every watched backend's residency current; a background service."""

    def __init__(
        self,
        registry: Registry,
        http: httpx.AsyncClient,
        settings: Callable[[], HealthCheckConfig],
    ) -> None:
        """A watcher of ``registry``'s backends, asking them through ``http``.

        Args:
            settings: Returns the ``[health_check]`` in force: its ``timeout_seconds`` bounds
                each request, its ``interval_seconds`` spaces the polls.
        """
        self._registry = registry
        self._http = http
        self._settings = settings
        self._changed: trio.Event | None = None

    def backends_changed(self) -> None:
        """The registry's backends were replaced (a reload): start and stop tasks to match."""
        if self._changed is not None:
            self._changed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch every backend until cancelled; reports started at once."""
        tasks: dict[_Identity, trio.CancelScope] = {}
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                self._changed = trio.Event()
                wanted = {b.identity(): b for b in self._registry if b.config.type in WATCHED_TYPES}
                for identity in tasks.keys() - wanted.keys():
                    tasks.pop(identity).cancel()
                for identity in wanted.keys() - tasks.keys():
                    tasks[identity] = trio.CancelScope()
                    nursery.start_soon(self._watch, wanted[identity], tasks[identity])
                await self._changed.wait()

    async def _watch(self, backend: Backend, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                settings = self._settings()
                router = False
                with trio.move_on_after(settings.timeout_seconds):
                    router = await self.refresh(backend)
                if router and await self._follow(backend, settings):
                    await trio.sleep(RECONNECT_SECONDS)
                else:
                    await trio.sleep(settings.interval_seconds)

    async def refresh(self, backend: Backend) -> bool:
        """Ask ``backend`` once and replace its residency; whether it is a llama.cpp router.

        A server that fails or answers nonsense leaves what was known.
        """
        try:
            if backend.config.type == "ollama":
                body = await fetch(self._http, backend, "GET", "/api/ps")
                found, router = reports.ollama_ps(body, backend.models), False
            else:
                body = await fetch(self._http, backend, "GET", "/v1/models")
                found, router = reports.llamacpp_models(body)
        except (errors.UpstreamError, msgspec.DecodeError) as exc:
            log.debug("residency of backend '%s' unknown for now: %s", backend.name, exc)
            return False
        current = self._current(backend)
        if current is not None:
            for model, residency in found.items():
                _set(current, model, residency)
            for model in current.residency.keys() - found.keys():
                del current.residency[model]
        return router

    async def _follow(self, backend: Backend, settings: HealthCheckConfig) -> bool:
        """Apply a router's ``/models/sse`` events until the stream ends; whether it opened."""
        request = self._http.build_request(
            "GET", backend.base_url + "/models/sse", headers=_headers(backend), timeout=None
        )
        response: httpx.Response | None = None
        try:
            with trio.move_on_after(settings.timeout_seconds):
                response = await self._http.send(request, stream=True)
            if response is None or not response.is_success:
                return False
            with trio.move_on_after(settings.timeout_seconds):
                await self.refresh(backend)
            parser = SSEParser(max_event_bytes=MAX_EVENT_BYTES)
            async for chunk in response.aiter_raw():
                for event in parser.feed(chunk):
                    change = None if event.data is None else reports.llamacpp_event(event.data)
                    current = self._current(backend)
                    if change is not None and current is not None:
                        _set(current, *change)
        except (httpx.HTTPError, errors.BadUpstreamResponse) as exc:
            log.debug("residency stream of backend '%s' ended: %s", backend.name, exc)
        finally:
            if response is not None:
                with trio.move_on_after(1.0, shield=True):
                    await response.aclose()
        return True

    def _current(self, backend: Backend) -> Backend | None:
        """The registry's backend of this identity now; None when a reload replaced it."""
        current = self._registry.get(backend.name)
        if current is None or current.identity() != backend.identity():
            return None
        return current


def _headers(backend: Backend) -> dict[str, str]:
    headers = {"accept": "text/event-stream", "accept-encoding": "identity"}
    headers.update(dialect_for(backend.config.type).probe_headers(backend))
    return headers


def _set(backend: Backend, model: str, residency: ModelResidency) -> None:
    """Record ``model``'s residency on ``backend``, logging a change of state."""
    before = backend.residency_of(model)
    backend.residency[model] = residency
    if residency.state is not before:
        log.info("backend '%s': model '%s' is %s", backend.name, model, residency.state.value)
