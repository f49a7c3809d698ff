"""Forwarding one proxy request: attempts, retries and the streaming commit (SPEC §3.3, §3.4).

Theory of operation. Everything before a response is committed to the client — choosing a
backend, every attempt — runs inside one request-deadline scope (``request_timeout_seconds``,
capped by the drain deadline). Each attempt is bounded further: non-streaming by
``attempt_timeout_seconds``, streaming until its first event by
``first_token_timeout_seconds``. A retryable failure moves on to the next candidate until
``1 + max_retries`` attempts were made.

A non-streaming attempt reads the whole body, validates it as JSON and returns it. A streaming
attempt commits when its first event arrives: the open upstream stream is handed to the
request's exit stack (its owner from then on), and the view returns a response whose body is
the relay. Every attempt is finished exactly once with its outcome; an attempt still open
when its scope unwinds (client gone, drain) is finished ``cancelled``.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import msgspec
import trio
from quart import Response

from nexus_trio import errors
from nexus_trio.api.context import RequestContext
from nexus_trio.api.views import RequestView
from nexus_trio.quality.outcome import Outcome, outcome_for_status
from nexus_trio.registry import Backend, HealthState
from nexus_trio.services import Attempt, Services
from nexus_trio.upstream.chunks import body_usage
from nexus_trio.upstream.client import read_body
from nexus_trio.upstream.headers import client_response_headers
from nexus_trio.upstream.relay import StreamLimits, max_stream_deadline, relay
from nexus_trio.upstream.stream import UpstreamStream

#: How long closing an upstream response may take while the request is being cancelled.
_CLOSE_SECONDS = 1.0


async def _close_shielded(closeable: httpx.Response | UpstreamStream) -> None:
    with trio.move_on_after(_CLOSE_SECONDS, shield=True):
        await closeable.aclose()


class Forwarder:
    """Sends proxy requests upstream for one :class:`Services`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def candidates(self, model: str) -> list[Backend]:
        """Healthy backends serving ``model``, best first (priority, load, name)."""
        registry = self.services.registry
        serving = registry.serving(model)
        if not serving:
            known = sorted(registry.known_models())
            if not known:
                raise errors.ModelNotFound(
                    f"The model '{model}' does not exist: no backend is configured."
                )
            listed = ", ".join(known[:20])
            raise errors.ModelNotFound(
                f"The model '{model}' does not exist. Known models: {listed}.", param="model"
            )
        healthy = [b for b in serving if b.health is HealthState.HEALTHY]
        if not healthy:
            raise errors.NoAvailableBackend(
                f"No backend can serve '{model}' now: {len(serving)} excluded (unhealthy).",
                headers={"Retry-After": "1"},
            )
        return sorted(healthy, key=lambda b: (b.config.priority, b.counters.pending, b.name))

    async def forward(
        self,
        ctx: RequestContext,
        view: RequestView,
        path: str,
        body: bytes,
        client_headers: Sequence[tuple[bytes, bytes]],
    ) -> Response:
        """Route, attempt and return the response for one proxy request.

        Blocks until a response is committed (streams: until their first event). Raises
        :class:`APIError` for the final error; cancellation (client gone) finishes every open
        attempt as ``cancelled`` and closes its upstream response.
        """
        services = self.services
        server = services.config.server
        ctx.stream = view.stream
        ctx.requested_model = view.model
        candidates = self.candidates(view.model)
        budget = 1 + services.config.routing.max_retries
        last_error: errors.APIError | None = None
        with trio.move_on_at(ctx.started + server.request_timeout_seconds) as request_scope:
            services.drain.watch(request_scope)
            for backend in candidates[:budget]:
                ctx.attempts += 1
                ctx.backend = backend.name
                ctx.backend_location = backend.location
                ctx.privacy_zone = backend.config.privacy_zone()
                ctx.served_model = view.model
                if ctx.attempts > 1:
                    ctx.route_reason = "retry"
                elif len(candidates) == 1:
                    ctx.route_reason = "only_candidate"
                else:
                    ctx.route_reason = "priority"
                try:
                    return await self._attempt(ctx, backend, view, path, body, client_headers)
                except errors.UpstreamError as exc:
                    last_error = exc
                    if not exc.retryable:
                        break
        if request_scope.cancelled_caught:
            if services.drain.expired():
                raise errors.ShuttingDown()
            last_error = errors.BackendTimeout(
                f"No backend answered within {server.request_timeout_seconds:g} s."
            )
        assert last_error is not None
        if ctx.attempts >= 2:
            last_error.headers["x-should-retry"] = "false"
        raise last_error

    async def _attempt(
        self,
        ctx: RequestContext,
        backend: Backend,
        view: RequestView,
        path: str,
        body: bytes,
        client_headers: Sequence[tuple[bytes, bytes]],
    ) -> Response:
        services = self.services
        server = services.config.server
        attempt = services.start_attempt(backend, view.model, stream=view.stream)
        response: httpx.Response | None = None
        #: What to close unless the stream is committed (then the request's exit stack owns it).
        owned: httpx.Response | UpstreamStream | None = None
        committed = False
        timeout = (
            server.first_token_timeout_seconds if view.stream else server.attempt_timeout_seconds
        )
        sent_at = trio.current_time()
        try:
            with trio.fail_after(timeout):
                response = owned = await services.upstream.open(
                    backend,
                    path,
                    body,
                    client_headers,
                    request_id=ctx.request_id,
                    connect_timeout=server.connect_timeout_seconds,
                )
                if view.stream and 200 <= response.status_code < 300:
                    stream = owned = UpstreamStream(response, backend, sent_at=sent_at)
                    result = await self._commit_stream(ctx, attempt, stream)
                    committed = True
                    return result
                data = await read_body(response, backend, limit=server.max_response_body_bytes)
            return self._finish_buffered(ctx, attempt, response, data)
        except trio.TooSlowError as exc:
            services.finish_attempt(attempt, Outcome.FAILURE)
            what = "its first event" if view.stream else "a response"
            raise errors.BackendTimeout(
                f"Backend '{backend.name}' did not send {what} within {timeout:g} s."
            ) from exc
        except errors.UpstreamError:
            services.finish_attempt(attempt, Outcome.FAILURE)
            raise
        finally:
            ctx.upstream_seconds += trio.current_time() - sent_at
            if not committed:
                # An attempt that recorded no outcome by now was cut short (no-op otherwise).
                services.finish_attempt(attempt, Outcome.CANCELLED)
                if owned is not None:
                    await _close_shielded(owned)

    def _finish_buffered(
        self, ctx: RequestContext, attempt: Attempt, response: httpx.Response, data: bytes
    ) -> Response:
        """Judge a fully read upstream answer: return it, or raise to retry elsewhere."""
        services = self.services
        status = response.status_code
        headers = client_response_headers(response.headers)
        outcome = outcome_for_status(status)
        if outcome is Outcome.FAILURE:
            services.finish_attempt(attempt, outcome)
            raise errors.UpstreamStatusError(attempt.backend.name, status, data, headers)
        if outcome is Outcome.CLIENT_ERROR or attempt.stream:
            # 4xx is the client's fault, returned as-is; a non-2xx streaming answer too.
            services.finish_attempt(attempt, outcome)
            ctx.status = status
            return Response(data, status=status, headers=headers)
        try:
            usage = body_usage(data)
        except msgspec.DecodeError as exc:
            services.finish_attempt(attempt, Outcome.FAILURE)
            raise errors.BadUpstreamResponse(
                f"Backend '{attempt.backend.name}' sent a response that is not valid JSON."
            ) from exc
        completion_tokens = usage.completion_tokens if usage is not None else None
        if usage is not None:
            ctx.prompt_tokens = usage.prompt_tokens
            ctx.completion_tokens = usage.completion_tokens
        services.finish_attempt(attempt, Outcome.SUCCESS, completion_tokens=completion_tokens)
        ctx.status = status
        return Response(data, status=status, headers=headers)

    async def _commit_stream(
        self, ctx: RequestContext, attempt: Attempt, stream: UpstreamStream
    ) -> Response:
        """Wait for the first event, then hand the stream to the request and respond."""
        services = self.services
        content_type = stream.response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            raise errors.BadUpstreamResponse(
                f"Backend '{attempt.backend.name}' answered a stream request without an "
                "event stream."
            )
        first = await stream.receive_first()
        ctx.exit_stack.push_async_callback(self._release_stream, attempt, stream)
        now = trio.current_time()
        ctx.committed_at = now
        ctx.status = stream.response.status_code
        server = services.config.server
        limits = StreamLimits(
            idle_seconds=server.stream_idle_timeout_seconds,
            max_deadline=max_stream_deadline(now, server.max_stream_seconds),
        )

        def on_end(reason: str | None) -> None:
            attempt.ttft_ms = ctx.ttft_ms = stream.ttft_ms()
            if stream.usage is not None:
                ctx.prompt_tokens = stream.usage.prompt_tokens
                ctx.completion_tokens = stream.usage.completion_tokens
            if reason is None:
                services.finish_attempt(attempt, Outcome.SUCCESS)
                return
            ctx.truncated = True
            services.metrics.stream_truncated.labels(attempt.backend.name, reason).inc()
            cut_by_gateway = reason in ("drain", "max_duration")
            services.finish_attempt(
                attempt, Outcome.CANCELLED if cut_by_gateway else Outcome.FAILURE
            )

        headers = client_response_headers(stream.response.headers)
        headers["cache-control"] = "no-cache"
        return Response(
            relay(stream, first, limits, services.drain, on_end),
            status=stream.response.status_code,
            headers=headers,
        )

    async def _release_stream(self, attempt: Attempt, stream: UpstreamStream) -> None:
        """Exit-stack callback: record a stream the client abandoned, close the upstream."""
        attempt.ttft_ms = stream.ttft_ms()
        self.services.finish_attempt(attempt, Outcome.CANCELLED)
        await _close_shielded(stream)
