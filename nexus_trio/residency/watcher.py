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

Warm models (docs/routing.md#model-lifecycle). After each report, every model of a healthy
backend's ``warm_models`` that it serves and that is ``unloaded`` — or, on Ollama, loaded with
an expiry within :data:`PIN_HORIZON_SECONDS` (a request with a shorter ``keep_alive`` reset
it) — is loaded again through :class:`~nexus_trio.residency.lifecycle.ModelControl`, only while
the backend has no attempt in flight (so a load never evicts the model a request is using; the
check is made again each ``interval_seconds``), at most once per ``interval_seconds`` per
model, each load bounded by :data:`WARM_LOAD_SECONDS`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx
import msgspec
import trio

from nexus_trio import errors
from nexus_trio.config import HealthCheckConfig
from nexus_trio.dialects import dialect_for
from nexus_trio.health.probe import fetch
from nexus_trio.registry import Backend, HealthState, ModelResidency, Registry, Residency
from nexus_trio.residency import reports
from nexus_trio.residency.lifecycle import ModelControl
from nexus_trio.upstream.sse import SSEParser

log = logging.getLogger("nexus_trio.residency")

_Identity = tuple[str, str, str]
#: Backend types whose servers tell which models they hold.
WATCHED_TYPES = frozenset({"llamacpp", "ollama"})
#: Wait before reopening a residency stream that ended.
RECONNECT_SECONDS = 1.0
#: Largest residency event accepted (a llama.cpp ``loaded`` event describes the model).
MAX_EVENT_BYTES = 256 * 1024
#: An Ollama warm model expiring sooner than this is pinned again (``keep_alive`` -1).
PIN_HORIZON_SECONDS = 86400.0
#: The longest a warm model's load may take (a large model from a slow disk).
WARM_LOAD_SECONDS = 600.0


class ResidencyWatcher:
    """Keeps every watched backend's residency current; a background service."""

    def __init__(
        self,
        registry: Registry,
        http: httpx.AsyncClient,
        settings: Callable[[], HealthCheckConfig],
        control: ModelControl,
    ) -> None:
        """A watcher of ``registry``'s backends, asking them through ``http``.

        Args:
            settings: Returns the ``[health_check]`` in force: its ``timeout_seconds`` bounds
                each request, its ``interval_seconds`` spaces the polls.
            control: What loads the ``warm_models`` again.
        """
        self._registry = registry
        self._http = http
        self._settings = settings
        #: What loads and unloads models (the admin routes use it too).
        self.control = control
        self._changed: trio.Event | None = None
        #: Per (backend name, model): trio time of the last warm load started.
        self._warmed_at: dict[tuple[str, str], float] = {}

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
            async with trio.open_nursery() as loads:
                loads.start_soon(self._tick_warm, backend, loads)
                while True:
                    settings = self._settings()
                    router = False
                    with trio.move_on_after(settings.timeout_seconds):
                        router = await self.refresh(backend)
                    self._keep_warm(backend, loads)
                    if router and await self._follow(backend, settings, loads):
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
                if not _still_loading(current, model, residency):
                    _set(current, model, residency)
            for model in current.residency.keys() - found.keys():
                del current.residency[model]
        return router

    async def _follow(
        self, backend: Backend, settings: HealthCheckConfig, loads: trio.Nursery
    ) -> bool:
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
                        self._keep_warm(current, loads)
        except (httpx.HTTPError, errors.BadUpstreamResponse) as exc:
            log.debug("residency stream of backend '%s' ended: %s", backend.name, exc)
        finally:
            if response is not None:
                with trio.move_on_after(1.0, shield=True):
                    await response.aclose()
        return True

    def _keep_warm(self, backend: Backend, loads: trio.Nursery) -> None:
        """Start loading each warm model that needs it, unless one started lately."""
        current = self._current(backend)
        if current is None:
            return
        now, wall = trio.current_time(), time.time()
        interval = self._settings().interval_seconds
        for model in current.config.warm_models:
            key = (current.name, model)
            last = self._warmed_at.get(key)
            due = last is None or now - last >= interval
            if due and current.counters.pending == 0 and _needs_load(current, model, wall):
                self._warmed_at[key] = now
                loads.start_soon(self._warm, current, model)

    async def _tick_warm(self, backend: Backend, loads: trio.Nursery) -> None:
        """Look at the warm models each ``interval_seconds`` too: a load set aside while
        attempts were in flight happens then."""
        while True:
            await trio.sleep(self._settings().interval_seconds)
            self._keep_warm(backend, loads)

    async def _warm(self, backend: Backend, model: str) -> None:
        """Load ``model`` on ``backend``, logging the outcome."""
        log.info("backend '%s': loading warm model '%s'", backend.name, model)
        with trio.move_on_after(WARM_LOAD_SECONDS) as bound:
            try:
                await self.control.load(backend, model)
            except errors.UpstreamError as exc:
                log.warning(
                    "backend '%s': warm model '%s' not loaded: %s", backend.name, model, exc
                )
        if bound.cancelled_caught:
            log.warning("backend '%s': warm model '%s' took too long to load", backend.name, model)

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


def _still_loading(backend: Backend, model: str, reported: ModelResidency) -> bool:
    """Whether a model a request of the gateway is loading (so ``loading``) should stay so
    though the report says ``unloaded``: Ollama lists a model only once it is loaded."""
    return (
        reported.state is Residency.UNLOADED
        and backend.residency_of(model) is Residency.LOADING
        and backend.counters.pending > 0
    )


def _needs_load(backend: Backend, model: str, wall: float) -> bool:
    """Whether a warm ``model`` must be loaded (or, on Ollama, pinned) again now."""
    if not backend.serves(model) or backend.health is not HealthState.HEALTHY:
        return False
    known = backend.residency.get(model)
    if known is None or known.state is Residency.UNLOADED:
        return known is not None or backend.config.type == "ollama"
    expires = known.expires_at
    return (
        known.state is Residency.LOADED
        and expires is not None
        and expires < wall + PIN_HORIZON_SECONDS
    )


def _set(backend: Backend, model: str, residency: ModelResidency) -> None:
    """Record ``model``'s residency on ``backend``, logging a change of state."""
    before = backend.residency_of(model)
    backend.residency[model] = residency
    if residency.state is not before:
        log.info("backend '%s': model '%s' is %s", backend.name, model, residency.state.value)
