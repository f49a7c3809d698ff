"""The simulated backend's HTTP/1.1 server on trio streams and h11 (see the package docstring)."""

from __future__ import annotations

import logging
import random
import time

import h11
import trio

from nexus_trio.simulator import completion, memory, payloads
from nexus_trio.simulator.http import JSON, RECEIVE_BYTES, After, Exchange, reset
from nexus_trio.simulator.options import (
    MAX_RECEIVED,
    PARTIAL_EVENTS,
    FailMode,
    ReceivedRequest,
    SimulatorOptions,
)

log = logging.getLogger("nexus_trio.simulator")


class SimulatedBackend:
    """A simulated inference server speaking OpenAI, Ollama and llama.cpp probe dialects.

    Attributes:
        options: Behaviour, read per request; change it freely while the backend runs.
        port: The bound port, set by :meth:`run` before it reports started.
        received: Every request in arrival order (only the last ``MAX_RECEIVED`` are kept).
        active_responses: Inference answers being produced right now.
        disconnects: ``trio.current_time()`` of each client that left before its inference
            answer was complete.
        connections_accepted: TCP connections accepted so far (keep-alive reuse shows here).
        memory: Which models are loaded (:mod:`~nexus_trio.simulator.memory`).
    """

    def __init__(self, options: SimulatorOptions) -> None:
        """Prepare a backend; nothing is bound until :meth:`run`.

        Args:
            options: Behaviour; kept by reference, so later changes apply to later requests
                (except ``host``, ``port`` and ``seed``, used once).
        """
        self.options = options
        self.port = 0
        self.received: list[ReceivedRequest] = []
        self.active_responses = 0
        self.disconnects: list[float] = []
        self.connections_accepted = 0
        self._rng = random.Random(options.seed)
        self.memory = memory.ModelMemory(options)
        self._requests = 0

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind ``options.host:options.port`` and serve until cancelled; ``task_status`` gets
        the bound port (useful with ``port = 0``) once the listener accepts connections.

        Blocks forever. Cancellation closes the listener and every open connection, mid-answer
        or idle, so clients then see closed connections and refused connects. Raises
        ``OSError`` when the address cannot be bound (before ``started``). With ``port = 0``
        give a numeric ``host``: a name with several addresses gets one listener per address,
        each on its own port, and only the first port is reported.
        """
        listeners = await trio.open_tcp_listeners(self.options.port, host=self.options.host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve_connection, listeners)
            log.info(
                "simulator %s listening on %s:%d", self.options.name, self.options.host, self.port
            )
            task_status.started(self.port)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        """Serve requests on one connection until it closes; ``serve_listeners`` closes it."""
        self.connections_accepted += 1
        conn = h11.Connection(h11.SERVER)
        try:
            after = After.KEEP_ALIVE
            while after is After.KEEP_ALIVE:
                exchange = await self._receive(stream, conn)
                if exchange is None:
                    return
                after = await self._answer(exchange)
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                elif after is After.KEEP_ALIVE:
                    after = After.CLOSE
            if after is After.RESET:
                await reset(stream)
        except trio.BrokenResourceError:
            log.debug("simulator %s: connection reset by the client", self.options.name)
        except Exception:
            log.exception("simulator %s: connection failed", self.options.name)

    async def _next_event(self, stream: trio.SocketStream, conn: h11.Connection) -> h11.Event:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Event):
                return event
            # NEED_DATA (never PAUSED: a new cycle starts only after a complete exchange)
            if conn.they_are_waiting_for_100_continue:
                await stream.send_all(
                    conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                )
            conn.receive_data(await stream.receive_some(RECEIVE_BYTES))

    async def _receive(self, stream: trio.SocketStream, conn: h11.Connection) -> Exchange | None:
        """Read one whole request; ``None`` when the client closed or sent garbage (answered)."""
        try:
            request = await self._next_event(stream, conn)
            if isinstance(request, h11.ConnectionClosed):
                return None
            assert isinstance(request, h11.Request)  # the only other event a client starts with
            chunks: list[bytes] = []
            while not isinstance(event := await self._next_event(stream, conn), h11.EndOfMessage):
                if isinstance(event, h11.Data):
                    chunks.append(event.data)
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                body = payloads.openai_error(str(exc), "invalid_request_error", "bad_request")
                headers = [(b"content-type", JSON), (b"connection", b"close")]
                await stream.send_all(
                    conn.send(h11.Response(status_code=exc.error_status_hint, headers=headers))
                    + conn.send(h11.Data(data=body))
                    + conn.send(h11.EndOfMessage())
                )
            return None
        self._requests += 1
        exchange = Exchange(stream, conn, request, b"".join(chunks), b"sim-%d" % self._requests)
        record = ReceivedRequest(
            request.method.decode(),
            request.target.decode(),
            list(request.headers),
            exchange.body,
            exchange.at,
        )
        if len(self.received) >= MAX_RECEIVED:
            del self.received[0]
        self.received.append(record)
        log.debug("simulator %s: %s %s", self.options.name, record.method, record.path)
        return exchange

    async def _answer(self, exchange: Exchange) -> After:
        """Route one request and answer it."""
        if exchange.method == b"POST" and exchange.path in payloads.INFERENCE_ROUTES:
            return await self._watched(exchange)
        if (exchange.method, exchange.path) in memory.ROUTES:
            return await exchange.respond(*await self.memory.answer(exchange.method, exchange.body))
        options = self.options
        status, body = payloads.static_route(
            exchange.method,
            exchange.path,
            exchange.body,
            owner=options.name,
            models=options.models,
            embedding_models=options.embedding_models,
        )
        return await exchange.respond(status, body)

    async def _watched(self, exchange: Exchange) -> After:
        """Answer an inference request while watching the connection for the client leaving."""
        self.active_responses += 1
        after = After.CLOSE
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch, exchange, nursery.cancel_scope)
                try:
                    after = await self._infer(exchange)
                except trio.BrokenResourceError:
                    self._client_gone(exchange)
                nursery.cancel_scope.cancel()
        finally:
            self.active_responses -= 1
        return After.CLOSE if exchange.gone else after

    async def _watch(self, exchange: Exchange, scope: trio.CancelScope) -> None:
        """Read until EOF or reset, then cancel ``scope`` unless the answer is already out."""
        try:
            while data := await exchange.stream.receive_some(RECEIVE_BYTES):
                exchange.conn.receive_data(data)
        except trio.BrokenResourceError:
            pass
        if exchange.conn.our_state not in (h11.DONE, h11.MUST_CLOSE):
            self._client_gone(exchange)
            scope.cancel()

    def _client_gone(self, exchange: Exchange) -> None:
        if not exchange.gone:
            exchange.gone = True
            self.disconnects.append(trio.current_time())
            log.debug("simulator %s: client went away", self.options.name)

    async def _infer(self, exchange: Exchange) -> After:
        options = self.options
        embedding = exchange.path == b"/v1/embeddings"
        request = payloads.parse_inference(
            exchange.body,
            embedding=embedding,
            models=options.models,
            embedding_models=options.embedding_models,
        )
        if isinstance(request, tuple):
            return await exchange.respond(*request)
        exchange.at += await self.memory.ensure(request.model, request.keep_alive)
        streaming = request.stream and not embedding
        fail = options.fail_mode if self._rng.random() < options.error_rate else None
        if fail is not None and fail not in (FailMode.RESET_MID, FailMode.HANG_MID):
            return await self._fail(exchange, fail, streaming=streaming)
        if embedding:
            body = completion.embeddings(request)
            return await self._whole(exchange, body, options.ttft_ms / 1000, fail)
        chat = exchange.path == b"/v1/chat/completions"
        answer = completion.Completion(
            request,
            chat=chat,
            ident=f"{'chatcmpl' if chat else 'cmpl'}-{exchange.request_id.decode()}",
            created=int(time.time()),
            completion_tokens=options.completion_tokens,
        )
        if streaming:
            return await self._stream(exchange, answer, fail)
        delay = options.ttft_ms / 1000 + answer.completion_tokens * self._token_interval()
        return await self._whole(exchange, answer.body(), delay, fail)

    def _token_interval(self) -> float:
        tokens_per_second = self.options.tokens_per_second
        return 1 / tokens_per_second if tokens_per_second > 0 else 0.0

    async def _fail(self, exchange: Exchange, mode: FailMode, *, streaming: bool) -> After:
        """Fail at once in ``mode`` (every mode but the ``*-mid`` ones)."""
        options = self.options
        match mode:
            case FailMode.HTTP_500:
                error = payloads.openai_error("simulated failure", "server_error", "internal_error")
                return await exchange.respond(500, error)
            case FailMode.HTTP_429:
                error = payloads.openai_error(
                    "simulated rate limit", "requests", "rate_limit_exceeded"
                )
                retry_after = (b"retry-after", b"%d" % options.retry_after_seconds)
                return await exchange.respond(429, error, JSON, retry_after)
            case FailMode.HTML_502:
                return await exchange.respond(502, payloads.HTML_502, b"text/html")
            case FailMode.RESET:
                return After.RESET
            case FailMode.GARBAGE if streaming:
                headers = exchange.headers(b"text/event-stream", (b"connection", b"close"))
                await exchange.send(
                    h11.Response(status_code=200, headers=headers),
                    h11.Data(data=payloads.GARBAGE_SSE),
                    h11.EndOfMessage(),
                )
                return After.CLOSE
            case FailMode.GARBAGE:
                close = (b"connection", b"close")
                return await exchange.respond(200, payloads.GARBAGE_JSON, JSON, close)
            case _:  # FailMode.HANG; the *-mid modes break inside the answer instead
                return await trio.sleep_forever()

    async def _broken(self, mode: FailMode) -> After:
        """End a partial answer: RST for ``reset-mid``, silence for ``hang-mid``."""
        if mode is FailMode.RESET_MID:
            return After.RESET
        return await trio.sleep_forever()

    async def _whole(
        self, exchange: Exchange, body: bytes, delay: float, fail: FailMode | None
    ) -> After:
        """Send ``body`` ``delay`` seconds after the request, or only half of it if failing."""
        await trio.sleep_until(exchange.at + delay)
        if fail is None:
            return await exchange.respond(200, body)
        length = (b"content-length", b"%d" % len(body))
        response = h11.Response(status_code=200, headers=exchange.headers(JSON, length))
        await exchange.send(response, h11.Data(data=body[: len(body) // 2]))
        return await self._broken(fail)

    async def _stream(
        self, exchange: Exchange, answer: completion.Completion, fail: FailMode | None
    ) -> After:
        """Stream ``answer`` as SSE: headers now, events from ``ttft_ms`` on, then [DONE]."""
        headers = exchange.headers(b"text/event-stream", (b"cache-control", b"no-cache"))
        await exchange.send(h11.Response(status_code=200, headers=headers))
        first_at = exchange.at + self.options.ttft_ms / 1000
        interval = self._token_interval()
        count = answer.event_count if fail is None else min(PARTIAL_EVENTS, answer.event_count)
        pending = answer.start_event()
        await trio.sleep_until(first_at)
        for index in range(count):
            if (due := first_at + index * interval) > trio.current_time():
                await trio.sleep_until(due)  # skipped when unpaced: send_all checkpoints anyway
            await exchange.send(h11.Data(data=pending + answer.content_event(index)))
            pending = b""
        if fail is not None:
            return await self._broken(fail)
        await exchange.send(h11.Data(data=pending + answer.end_events()), h11.EndOfMessage())
        return After.KEEP_ALIVE
