"""The gateway benchmark: direct-to-upstream, the gateway, a floor and a ceiling, side by side.

Run as ``python bench/run.py [--quick] [--runs N]`` from the work tree, in the venv. One
invocation starts, all on 127.0.0.1:

- a static upstream: nginx (Debian's ``nginx`` package) from ``bench/nginx.conf.template``,
  else the built-in ``bench/static_upstream.py``. Model ``bench`` is served under ``/plain``
  (a 700-byte chat completion), ``bench-stream`` under ``/stream`` (a 20-event SSE stream);
- the gateway, ``python -m nexus_trio serve`` with a backend for each of those two paths;
- the floor, ``bench/floor_app.py``: a bare ASGI forwarder on the same server stack that
  sends every POST to ``/plain`` through the gateway's ``KeepAliveTransport`` and answers with the
  upstream's response (no routing, no accounting, no metrics);
- the ceiling, ``bench/noop_app.py``: a no-op ASGI app on hypercorn's trio worker that
  answers with the same 700 bytes; and a second one with ``--gateway-headers``, adding the
  seven headers every proxied gateway response carries (what they alone cost the stack);
- a load generator in its own process: wrk (Debian's ``wrk``) with ``bench/wrk.lua``, else
  ``bench/pyload.py``.

Each run measures, for ``--duration`` seconds each, non-streaming req/s with p50/p99 latency
at 1 and 16 connections on the upstream, the gateway, the floor and the no-op app, and 20-event
streams at 16 connections on the upstream and the gateway (one response is one whole stream,
so streams/s is req/s). After the runs the gateway serves 100k more requests (streaming and
non-streaming alternately, 16 connections) and its RSS is read before and after. The report,
medians of the runs with the per-run values of each ratio, goes to stdout and to
``bench/results/<timestamp>.md``.

``--dashboards N`` adds, to every run, what N connected dashboards cost the gateway: the
gateway's non-streaming (c=16) and streaming loads are measured again without and with N
clients reading ``/v1/dashboard/events`` (``bench/dashboards.py``, pinned with the load
generator), in the order without, with, with, without, so both sides see the same machine;
the report gives the with/without ratios of each run. It also reads the gateway's CPU time
(``/proc/PID/stat``) over an idle period without and then with the N dashboards connected:
the cost of the once-a-second snapshot itself, which a noisy machine does not blur.

``--spend`` adds, to every run, what spend tracking costs: a fresh pair of gateways, a plain one
and one with two named keys (rate limits far above the load), ``[[pricing]]`` on both
backends, budgets and the SQLite ledger (``bench/spend_gateway.py``), is measured non-streaming
(c=16) and streaming, in the order plain, spend, spend, plain, with the load's requests
alternating between the two keys (sent to both; the plain one ignores them), reading each
gateway's CPU time too; the report gives the spend/plain ratios of each run against the
target of 0.9, and what the spend gateway charged. ``--spend-redis`` does the same with the
spend gateway also syncing spend and rate-limit windows through a ``redis-server`` of its own
(``[state] store``), against the target of 0.85. ``--created-keys N`` (with ``--spend``) gives
the spend gateway its two keys as keys created at run time instead of ``[[keys]]`` entries, and
adds a third gateway, the same with N created keys (``bench/created_keys.py``), measured in the
order plain, spend, N, N, spend, plain: the N/2 ratios are what authenticating among N created
keys costs, against the target of 0.95 (within noise).

``--client-apis`` adds, to every run, the client APIs the gateway translates: after its chat
stream load, the same gateway is loaded at 16 connections with streaming chat-completions,
``/v1/messages`` and ``/v1/responses`` bodies for ``bench-stream``, in the order chat, messages,
responses, responses, messages, chat (``bench/client_apis.py``), reading its CPU time too;
every answer is checked to be the whole translated stream. The report gives the
messages/chat and responses/chat ratios of each run against the target of 0.8.

CPU placement (2 cores): the four Python servers on the first core (only one is loaded at a
time), nginx and the load generator on the second, so the load generator competes with
the upstream, never with the Python server under test. With one core nothing is pinned.
``--install`` (root) installs nginx and wrk with apt-get when they are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import client_apis
import created_keys
import payloads
import spend_gateway

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
CHAT_PATH = "/v1/chat/completions"
APT_INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", "nginx", "wrk"]

#: Goals of the issue, checked on the medians.
GOAL_CEILING_RATIO = 0.5
GOAL_ADDED_P50_MS = 1.0
GOAL_STREAMS_PER_S = 600.0
GOAL_RSS_GROWTH_MB = 10.0
#: Throughput with dashboards connected, relative to without.
GOAL_DASHBOARDS_RATIO = 0.97
#: Throughput with keys, limits, pricing and the ledger, relative to without (`--spend`).
GOAL_SPEND_RATIO = 0.9
#: Throughput tracing every request, relative to without (`--tracing`).
GOAL_TRACING_RATIO = 0.9
#: The same with the spend gateway also syncing through Redis (`--spend-redis`).
GOAL_SPEND_REDIS_RATIO = 0.85
#: Throughput with N created keys, relative to two (`--created-keys N`): within noise.
GOAL_CREATED_KEYS_RATIO = 0.95

GATEWAY_CONFIG = """\
[server]
host = "{host}"
port = {port}
drain_timeout_seconds = 1

[logging]
level = "warning"

[[backends]]
name = "bench-plain"
url = "http://{host}:{upstream}/plain"
type = "generic"
models = ["{plain}"]

[[backends]]
name = "bench-stream"
url = "http://{host}:{upstream}/stream"
type = "generic"
models = ["{stream}"]
"""


@dataclass(frozen=True)
class Load:
    """One load-generator run against one URL."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    #: CPU seconds the server under load used meanwhile, when measured (``--spend``).
    cpu_seconds: float | None = None
    #: Bodies that failed the load's ``BENCH_EXPECT_*`` check (wrk only; 0 without it).
    unexpected: int = 0

    @property
    def rate(self) -> float:
        """Responses per second (streams per second for a streaming body)."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        """The server's CPU microseconds per response (``nan`` when not measured)."""
        if self.cpu_seconds is None or not self.requests:
            return float("nan")
        return self.cpu_seconds / self.requests * 1e6

    @classmethod
    def merge(cls, loads: list[Load]) -> Load:
        """Several loads as one: requests, seconds, errors and CPU added; p50 and p99 the
        mean of theirs."""
        cpu = [load.cpu_seconds for load in loads]
        return cls(
            requests=sum(load.requests for load in loads),
            seconds=sum(load.seconds for load in loads),
            p50_ms=statistics.mean(load.p50_ms for load in loads),
            p99_ms=statistics.mean(load.p99_ms for load in loads),
            non_2xx=sum(load.non_2xx for load in loads),
            socket_errors=sum(load.socket_errors for load in loads),
            unexpected=sum(load.unexpected for load in loads),
            cpu_seconds=None if None in cpu else sum(c for c in cpu if c is not None),
        )


@dataclass(frozen=True)
class Settings:
    """What one invocation measures and with which tools."""

    duration: int
    warmup: int
    runs: int
    rss_requests: int
    rss_time_limit: int
    use_nginx: bool
    use_wrk: bool
    server_cpus: frozenset[int] | None
    tool_cpus: frozenset[int] | None
    #: Dashboards connected for the with/without comparison; 0 = no comparison.
    dashboards: int = 0
    #: Measure a gateway with keys, limits, pricing and the ledger beside the plain one.
    spend: bool = False
    #: With ``spend``: the spend gateway also syncs through a real ``redis-server`` (fleet store).
    spend_redis: bool = False
    #: Measure translated Messages and Responses streams against chat streams (same gateway).
    client_apis: bool = False
    #: With ``spend``: its keys are created ones, and a third gateway holds this many (0: off).
    created_keys: int = 0
    #: Measure a gateway tracing every request (``sample_ratio = 1``) beside one without.
    tracing: bool = False


@dataclass
class Stack:
    """The running servers: their ports and the gateway's pid."""

    upstream: int
    gateway: int
    floor: int
    noop: int
    noop_headers: int
    gateway_pid: int


@dataclass
class Counters:
    """Everything counted across the whole invocation."""

    non_2xx: int = 0
    socket_errors: int = 0
    unexpected: int = 0

    def add(self, load: Load) -> Load:
        self.non_2xx += load.non_2xx
        self.socket_errors += load.socket_errors
        self.unexpected += load.unexpected
        return load


# --- tools and processes -------------------------------------------------------------------


def _version(command: list[str]) -> str:
    """First output line of a ``-v`` style command (wrk exits 1 on ``-v``, nginx prints to
    stderr)."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).strip().splitlines()[0]


def choose_tools(args: argparse.Namespace) -> tuple[bool, bool, list[str]]:
    """Decide nginx-or-built-in and wrk-or-Python; install the missing ones with ``--install``.

    Returns (use nginx, use wrk, notes for the report).
    """
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    notes = []
    if missing and args.install:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            sys.exit("--install needs root and apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(APT_INSTALL, check=True, env=env, stdout=subprocess.DEVNULL)
        notes.append(f"installed with apt-get: {', '.join(missing)}")
        missing = [tool for tool in missing if shutil.which(tool) is None]
    if missing:
        notes.append(
            f"not installed: {', '.join(missing)} (`{' '.join(APT_INSTALL)}`, or --install)"
        )
    for tool, choice in (("nginx", args.upstream), ("wrk", args.loadgen)):
        if choice == tool and tool in missing:
            sys.exit(f"{tool} is not installed: {' '.join(APT_INSTALL)}")
    use_nginx = args.upstream != "builtin" and "nginx" not in missing
    use_wrk = args.loadgen != "python" and "wrk" not in missing
    return use_nginx, use_wrk, notes


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _pinned(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    return None if cpus is None else lambda: os.sched_setaffinity(0, cpus)


def spawn(
    stack: contextlib.ExitStack, command: list[str], log: Path, cpus: frozenset[int] | None
) -> subprocess.Popen[bytes]:
    """Start a server process (output to ``log``) that is terminated when ``stack`` closes."""
    output = stack.enter_context(log.open("wb"))
    process = subprocess.Popen(
        command, stdout=output, stderr=subprocess.STDOUT, cwd=BENCH, preexec_fn=_pinned(cpus)
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    stack.callback(stop)
    return process


def wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, what: str
) -> None:
    """Poll ``ready`` for up to 30 s; fail with the log's tail if the process dies or never
    gets ready."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if ready():
                return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:]
    sys.exit(f"{what} did not start (exit code {process.poll()}):\n{tail}")


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One HTTP request to 127.0.0.1:``port``; the status and the whole body."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def listening(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1):
        return True


def render_nginx_config(prefix: Path, port: int) -> str:
    """``bench/nginx.conf.template`` with the prefix, the port and one location per route."""
    locations = []
    for path, (content_type, body) in payloads.upstream_routes().items():
        text = body.decode()
        if "$" in text or "\\" in text or "'" in text:
            raise ValueError(f"body of {path} cannot be inlined in nginx.conf")
        literal = text.replace("\n", "\\n")
        locations.append(
            f"        location = {path} {{\n"
            f"            default_type {content_type};\n"
            f"            return 200 '{literal}';\n"
            f"        }}"
        )
    template = (BENCH / "nginx.conf.template").read_text()
    return (
        template.replace("{{PREFIX}}", str(prefix))
        .replace("{{PORT}}", str(port))
        .replace("{{LOCATIONS}}", "\n".join(locations))
    )


def gateway_config(port: int, upstream: int) -> str:
    """The gateway's configuration file, listening on ``port``."""
    return GATEWAY_CONFIG.format(
        host=HOST,
        port=port,
        upstream=upstream,
        plain=payloads.PLAIN_MODEL,
        stream=payloads.STREAM_MODEL,
    )


@contextlib.contextmanager
def start_stack(settings: Settings, workdir: Path) -> Iterator[Stack]:
    """Start the upstream, the gateway, the floor and the no-op app; check their answers."""
    upstream_port, gateway_port = free_port(), free_port()
    floor_port, noop_port, noop_headers_port = free_port(), free_port(), free_port()
    with contextlib.ExitStack() as stack:
        upstream_log = workdir / "upstream.log"
        if settings.use_nginx:
            config = workdir / "nginx.conf"
            config.write_text(render_nginx_config(workdir, upstream_port))
            command = ["nginx", "-p", str(workdir), "-e", str(workdir / "error.log")]
            command += ["-c", str(config)]
        else:
            command = [sys.executable, "static_upstream.py", "--port", str(upstream_port)]
        upstream = spawn(stack, command, upstream_log, settings.tool_cpus)
        wait_until(lambda: listening(upstream_port), upstream, upstream_log, "the upstream")

        config = workdir / "gateway.toml"
        config.write_text(gateway_config(gateway_port, upstream_port))
        gateway_log = workdir / "gateway.log"
        command = [sys.executable, "-m", "nexus_trio", "serve", "--config", str(config)]
        gateway = spawn(stack, command, gateway_log, settings.server_cpus)
        wait_until(
            lambda: request(gateway_port, "GET", "/health")[0] == 200,
            gateway,
            gateway_log,
            "the gateway",
        )

        floor_log = workdir / "floor.log"
        command = [sys.executable, "floor_app.py", "--port", str(floor_port)]
        command += ["--upstream", f"http://{HOST}:{upstream_port}/plain"]
        floor = spawn(stack, command, floor_log, settings.server_cpus)
        wait_until(lambda: listening(floor_port), floor, floor_log, "the floor app")

        noop_log = workdir / "noop.log"
        command = [sys.executable, "noop_app.py", "--port", str(noop_port)]
        noop = spawn(stack, command, noop_log, settings.server_cpus)
        wait_until(lambda: listening(noop_port), noop, noop_log, "the no-op app")

        headers_log = workdir / "noop-headers.log"
        command = [sys.executable, "noop_app.py", "--port", str(noop_headers_port)]
        command.append("--gateway-headers")
        noop_headers = spawn(stack, command, headers_log, settings.server_cpus)
        wait_until(lambda: listening(noop_headers_port), noop_headers, headers_log, "the no-op app")

        check_answers(upstream_port, gateway_port, floor_port, noop_port, noop_headers_port)
        yield Stack(
            upstream_port,
            gateway_port,
            floor_port,
            noop_port,
            noop_headers_port,
            gateway.pid,
        )


def check_answers(upstream: int, gateway: int, floor: int, noop: int, noop_headers: int) -> None:
    """Fail unless every server answers each kind of request it serves as expected."""
    plain = payloads.chat_request(payloads.PLAIN_MODEL, streaming=False)
    streaming = payloads.chat_request(payloads.STREAM_MODEL, streaming=True)
    expected = payloads.chat_completion()
    checks = [
        ("upstream", request(upstream, "POST", "/plain" + CHAT_PATH, plain)),
        ("no-op app", request(noop, "POST", CHAT_PATH, plain)),
        ("no-op app with the gateway's headers", request(noop_headers, "POST", CHAT_PATH, plain)),
        ("floor app", request(floor, "POST", CHAT_PATH, plain)),
        ("gateway", request(gateway, "POST", CHAT_PATH, plain)),
    ]
    for what, (status, body) in checks:
        if status != 200 or json.loads(body) != json.loads(expected):
            sys.exit(f"{what} answered {status} {body[:300]!r}, not the chat completion")
    for what, port, path in [
        ("upstream", upstream, "/stream" + CHAT_PATH),
        ("gateway", gateway, CHAT_PATH),
    ]:
        check_stream(what, *request(port, "POST", path, streaming))


def check_stream(what: str, status: int, body: bytes) -> None:
    """Fail unless ``body`` is the whole 20-event stream."""
    content_events = body.count(b'"content":"token')
    if (
        status != 200
        or content_events != payloads.STREAM_EVENTS
        or b"error" in body
        or not body.endswith(b"data: [DONE]\n\n")
    ):
        sys.exit(f"{what} answered {status} {body[:300]!r}..., not the 20-event stream")


# --- load ----------------------------------------------------------------------------------


def run_load(
    settings: Settings,
    workdir: Path,
    url: str,
    connections: int,
    seconds: int,
    body: Path,
    *,
    alternate: Path | None = None,
    max_requests: int | None = None,
    keys: tuple[str, ...] = (),
    expect: client_apis.Api | None = None,
) -> Load:
    """Run the load generator once (in its own process, pinned with the upstream); with
    ``keys``, the requests carry them in turn as bearer keys; with ``expect``, wrk checks
    every answer's first bytes and last event (pyload.py does not)."""
    if settings.use_wrk:
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
        command += ["-s", str(BENCH / "wrk.lua"), url]
        env = {**os.environ, "BENCH_BODY": str(body)}
        if alternate is not None:
            env["BENCH_BODY_ALT"] = str(alternate)
        if keys:
            env["BENCH_KEYS"] = ",".join(keys)
        if max_requests is not None:
            env["BENCH_MAX_REQUESTS"] = str(max_requests)
        if expect is not None:
            env["BENCH_EXPECT_START"], env["BENCH_EXPECT_HAS"] = expect.start, expect.last
    else:
        command = [sys.executable, str(BENCH / "pyload.py"), url, "-c", str(connections)]
        command += ["-d", str(seconds), "--body", str(body)]
        if alternate is not None:
            command += ["--body-alt", str(alternate)]
        if max_requests is not None:
            command += ["--max-requests", str(max_requests)]
        for key in keys:
            command += ["--key", key]
        env = dict(os.environ)
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=seconds + 60,
        check=False,
        preexec_fn=_pinned(settings.tool_cpus),
    )
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw = json.loads(line.removeprefix("BENCH_RESULT "))
            return Load(
                requests=int(raw["requests"]),
                seconds=raw["duration_us"] / 1e6,
                p50_ms=raw["p50_us"] / 1e3,
                p99_ms=raw["p99_us"] / 1e3,
                non_2xx=int(raw["status"]),
                socket_errors=sum(int(raw[key]) for key in ("connect", "read", "write", "timeout")),
                unexpected=int(raw.get("unexpected", 0)),
            )
    sys.exit(f"no result from {' '.join(command)}:\n{result.stdout}\n{result.stderr}")


@dataclass(frozen=True)
class Bodies:
    """The request body files the load generators send."""

    plain: Path
    streaming: Path
    #: The streaming body of each client API of ``--client-apis``, by name.
    apis: dict[str, Path]

    @classmethod
    def write(cls, workdir: Path) -> Bodies:
        plain, streaming = workdir / "plain.json", workdir / "stream.json"
        plain.write_bytes(payloads.chat_request(payloads.PLAIN_MODEL, streaming=False))
        streaming.write_bytes(payloads.chat_request(payloads.STREAM_MODEL, streaming=True))
        apis = {name: workdir / f"stream-{name}.json" for name in client_apis.APIS}
        for name, api in client_apis.APIS.items():
            apis[name].write_bytes(api.body)
        return cls(plain, streaming, apis)


#: (key, target, connections, streaming) of the loads of one run, in the order they run.
CASES = [
    ("direct c1", "upstream", 1, False),
    ("gateway c1", "gateway", 1, False),
    ("noop c1", "noop", 1, False),
    ("noop+headers c1", "noop_headers", 1, False),
    ("floor c1", "floor", 1, False),
    ("direct c16", "upstream", 16, False),
    ("gateway c16", "gateway", 16, False),
    ("noop c16", "noop", 16, False),
    ("noop+headers c16", "noop_headers", 16, False),
    ("floor c16", "floor", 16, False),
    ("direct stream", "upstream", 16, True),
    ("gateway stream", "gateway", 16, True),
]


#: (target, streaming) of the 16-connection warm-up loads before the first run.
WARMUP = [
    ("upstream", False),
    ("gateway", False),
    ("noop", False),
    ("noop_headers", False),
    ("floor", False),
    ("gateway", True),
]


def target_url(stack: Stack, target: str, streaming: bool) -> str:
    if target == "upstream":
        return f"http://{HOST}:{stack.upstream}/{'stream' if streaming else 'plain'}{CHAT_PATH}"
    port = {
        "gateway": stack.gateway,
        "floor": stack.floor,
        "noop": stack.noop,
        "noop_headers": stack.noop_headers,
    }[target]
    return f"http://{HOST}:{port}{CHAT_PATH}"


def one_run(
    settings: Settings,
    workdir: Path,
    stack: Stack,
    bodies: Bodies,
    counters: Counters,
    spend_summaries: list[str],
    tracing_summaries: list[str],
) -> dict[str, Load]:
    """Every case of :data:`CASES` once, for ``settings.duration`` seconds each (and the
    comparisons asked for; the spend gateway's summary is appended to ``spend_summaries``, the
    tracing gateway's to ``tracing_summaries``)."""
    results = {}
    for key, target, connections, streaming in CASES:
        body = bodies.streaming if streaming else bodies.plain
        url = target_url(stack, target, streaming)
        results[key] = counters.add(
            run_load(settings, workdir, url, connections, settings.duration, body)
        )
    if settings.client_apis:
        results |= client_apis_comparison(settings, workdir, stack, bodies, counters)
    if settings.dashboards:
        results |= dashboards_comparison(settings, workdir, stack, bodies, counters)
    if settings.spend:
        results |= spend_comparison(settings, workdir, stack, bodies, counters, spend_summaries)
    if settings.tracing:
        results |= tracing_comparison(settings, workdir, stack, bodies, counters, tracing_summaries)
    return results


def client_apis_comparison(
    settings: Settings, workdir: Path, stack: Stack, bodies: Bodies, counters: Counters
) -> dict[str, Load]:
    """The gateway's streaming loads in each client API, in the order of
    :data:`client_apis.ORDER`, each answer checked; each kind's two loads merged, with the
    gateway's CPU time over them."""
    client_apis.check(stack.gateway)
    loads: dict[str, list[Load]] = {name: [] for name in client_apis.APIS}
    for name in client_apis.ORDER:
        api = client_apis.APIS[name]
        url = f"http://{HOST}:{stack.gateway}{api.path}"
        before = cpu_seconds(stack.gateway_pid)
        load = run_load(
            settings, workdir, url, 16, settings.duration, bodies.apis[name], expect=api
        )
        used = cpu_seconds(stack.gateway_pid) - before
        loads[name].append(counters.add(dataclasses.replace(load, cpu_seconds=used)))
    return {client_apis.key(name): Load.merge(measured) for name, measured in loads.items()}


#: (key, streaming) of the spend comparison's two loads (16 connections each).
SPEND_KINDS = [("c16", False), ("stream", True)]
#: The order each kind runs in: without, with, with, without (``+``: the spend gateway).
SPEND_ORDER = ["-", "+", "+", "-"]
#: With ``--created-keys``: ``*`` is the gateway with that many created keys.
CREATED_KEYS_ORDER = ["-", "+", "*", "*", "+", "-"]


@dataclass(frozen=True)
class SpendPair:
    """A plain gateway and a spend gateway started for one run's comparison."""

    plain: int
    plain_pid: int
    spend: int
    spend_pid: int
    state: Path
    #: With ``--created-keys``: the gateway holding that many created keys.
    many: int | None = None
    many_pid: int | None = None


@contextlib.contextmanager
def start_spend_pair(
    settings: Settings, workdir: Path, stack: Stack, number: int
) -> Iterator[SpendPair]:
    """Start a plain and a spend gateway on the stack's upstream, check their answers, and stop
    them on exit. Every run has its own pair: two processes of one program can differ by a
    few percent in speed (memory layout), which a single pair would pass off as the cost of
    spend tracking. The ledger's directory is kept from run to run."""
    state = workdir / "state"
    created = settings.created_keys
    states = {"spend": state, "many": workdir / "state-many"}
    if created:
        created_keys.prepare(states["spend"], len(spend_gateway.KEYS))
        created_keys.prepare(states["many"], created)
    with contextlib.ExitStack() as running:
        store = start_redis(running, workdir, settings) if settings.spend_redis else None
        ports, pids = {}, {}
        for side in ("plain", "spend", "many") if created else ("plain", "spend"):
            port = ports[side] = free_port()
            config = workdir / f"gateway-{side}-{number}.toml"
            text = gateway_config(port, stack.upstream)
            if side != "plain":
                text = spend_gateway.config(text, states[side], store, created=bool(created))
            config.write_text(text)
            log = workdir / f"gateway-{side}-{number}.log"
            command = [sys.executable, "-m", "nexus_trio", "serve", "--config", str(config)]
            process = spawn(running, command, log, settings.server_cpus)
            wait_until(
                lambda port=port: request(port, "GET", "/health")[0] == 200,
                process,
                log,
                f"the {side} gateway",
            )
            pids[side] = process.pid
        plain = payloads.chat_request(payloads.PLAIN_MODEL, streaming=False)
        status, body = request(ports["plain"], "POST", CHAT_PATH, plain)
        if status != 200 or json.loads(body) != json.loads(payloads.chat_completion()):
            sys.exit(f"plain gateway answered {status} {body[:300]!r}, not the chat completion")
        streaming = payloads.chat_request(payloads.STREAM_MODEL, streaming=True)
        check_stream("plain gateway", *request(ports["plain"], "POST", CHAT_PATH, streaming))
        spend_gateway.check_answers(ports["spend"], CHAT_PATH)
        if created:
            spend_gateway.check_answers(ports["many"], CHAT_PATH)
        yield SpendPair(
            ports["plain"],
            pids["plain"],
            ports["spend"],
            pids["spend"],
            state,
            ports.get("many"),
            pids.get("many"),
        )


def start_redis(running: contextlib.ExitStack, workdir: Path, settings: Settings) -> str:
    """A ``redis-server`` (no persistence) on a free port, pinned with the load tools; its URL."""
    if shutil.which("redis-server") is None:
        sys.exit("--spend-redis needs redis-server (apt-get install redis-server)")
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(workdir)]
    log = workdir / f"redis-{port}.log"
    process = spawn(running, command, log, settings.tool_cpus)
    wait_until(lambda: listening(port), process, log, "redis-server")
    return f"redis://127.0.0.1:{port}/0"


def spend_comparison(
    settings: Settings,
    workdir: Path,
    stack: Stack,
    bodies: Bodies,
    counters: Counters,
    summaries: list[str],
) -> dict[str, Load]:
    """A fresh plain and spend gateway under each load of :data:`SPEND_KINDS`, in the order
    of :data:`SPEND_ORDER`, both sent the two keys in turn; the two loads of each side merged,
    with the CPU time its gateway used. Appends the spend gateway's summary to ``summaries``."""
    with start_spend_pair(settings, workdir, stack, len(summaries) + 1) as pair:
        ports = {"-": pair.plain, "+": pair.spend}
        pids = {"-": pair.plain_pid, "+": pair.spend_pid}
        order = SPEND_ORDER
        if pair.many is not None and pair.many_pid is not None:
            ports["*"], pids["*"], order = pair.many, pair.many_pid, CREATED_KEYS_ORDER
        for port in ports.values():
            for body in (bodies.plain, bodies.streaming):
                url = f"http://{HOST}:{port}{CHAT_PATH}"
                counters.add(
                    run_load(
                        settings, workdir, url, 16, settings.warmup, body, keys=spend_gateway.KEYS
                    )
                )
        results = {}
        for kind, streaming in SPEND_KINDS:
            body = bodies.streaming if streaming else bodies.plain
            loads: dict[str, list[Load]] = {side: [] for side in ports}
            for side in order:
                url = f"http://{HOST}:{ports[side]}{CHAT_PATH}"
                before = cpu_seconds(pids[side])
                load = run_load(
                    settings, workdir, url, 16, settings.duration, body, keys=spend_gateway.KEYS
                )
                used = cpu_seconds(pids[side]) - before
                loads[side].append(counters.add(dataclasses.replace(load, cpu_seconds=used)))
            for side, measured in loads.items():
                results[f"gateway {kind} {side}spend"] = Load.merge(measured)
        summaries.append(spend_gateway.summary(pair.spend, pair.state))
    return results


#: The traced gateway's ``[tracing]``: every request traced, spans to ``otlp_sink.py``.
TRACING_CONFIG = """
[tracing]
otlp_endpoint = "http://{host}:{port}"
sample_ratio = 1.0
"""


@contextlib.contextmanager
def start_tracing_pair(
    settings: Settings, workdir: Path, stack: Stack, number: int
) -> Iterator[dict[str, tuple[int, int]]]:
    """An OTLP sink (pinned with the load tools), a plain gateway (``-``) and one tracing every
    request to the sink (``+``), both on the stack's upstream; (port, pid) by side. A new pair
    per run, for the reason given in :func:`start_spend_pair`."""
    with contextlib.ExitStack() as running:
        sink_port = free_port()
        log = workdir / f"otlp-sink-{number}.log"
        command = [sys.executable, str(BENCH / "otlp_sink.py"), "--port", str(sink_port)]
        sink = spawn(running, command, log, settings.tool_cpus)
        wait_until(lambda: listening(sink_port), sink, log, "the OTLP sink")
        sides = {}
        for side in ("-", "+"):
            port = free_port()
            text = gateway_config(port, stack.upstream)
            if side == "+":
                text += TRACING_CONFIG.format(host=HOST, port=sink_port)
            config = workdir / f"gateway-{side}tracing-{number}.toml"
            config.write_text(text)
            log = workdir / f"gateway-{side}tracing-{number}.log"
            command = [sys.executable, "-m", "nexus_trio", "serve", "--config", str(config)]
            process = spawn(running, command, log, settings.server_cpus)
            wait_until(
                lambda port=port: request(port, "GET", "/health")[0] == 200,
                process,
                log,
                f"the {side}tracing gateway",
            )
            sides[side] = (port, process.pid)
        yield sides


def tracing_counts(port: int) -> str:
    """What the traced gateway exported and dropped, from its ``/metrics``."""
    status, body = request(port, "GET", "/metrics")
    counts = {}
    for line in body.decode().splitlines():
        if line.startswith("nexus_trace_spans_"):
            name, value = line.rsplit(" ", 1)
            counts[name.removeprefix("nexus_trace_spans_")] = float(value)
    return ", ".join(f"{name}: {value:,.0f}" for name, value in counts.items()) or f"{status}"


def tracing_comparison(
    settings: Settings,
    workdir: Path,
    stack: Stack,
    bodies: Bodies,
    counters: Counters,
    summaries: list[str],
) -> dict[str, Load]:
    """A fresh plain and tracing gateway under each load of :data:`SPEND_KINDS`, in the order
    of :data:`SPEND_ORDER`; each side's two loads merged, with its gateway's CPU time. Appends
    what the tracing gateway exported and dropped to ``summaries``."""
    with start_tracing_pair(settings, workdir, stack, len(summaries) + 1) as sides:
        for port, _ in sides.values():
            for body in (bodies.plain, bodies.streaming):
                url = f"http://{HOST}:{port}{CHAT_PATH}"
                counters.add(run_load(settings, workdir, url, 16, settings.warmup, body))
        results = {}
        for kind, streaming in SPEND_KINDS:
            body = bodies.streaming if streaming else bodies.plain
            loads: dict[str, list[Load]] = {"-": [], "+": []}
            for side in SPEND_ORDER:
                port, pid = sides[side]
                url = f"http://{HOST}:{port}{CHAT_PATH}"
                before = cpu_seconds(pid)
                load = run_load(settings, workdir, url, 16, settings.duration, body)
                used = cpu_seconds(pid) - before
                loads[side].append(counters.add(dataclasses.replace(load, cpu_seconds=used)))
            for side, measured in loads.items():
                results[f"gateway {kind} {side}tracing"] = Load.merge(measured)
        time.sleep(1.5)  # the last batch's export (once a second)
        summaries.append(tracing_counts(sides["+"][0]))
    return results


#: (key, target, connections, streaming) of the dashboards comparison, in the order they run:
#: the dashboards are connected for the middle two.
DASHBOARD_CASES = [
    ("gateway c16 -dashboards", "gateway", 16, False),
    ("gateway c16 +dashboards", "gateway", 16, False),
    ("gateway stream +dashboards", "gateway", 16, True),
    ("gateway stream -dashboards", "gateway", 16, True),
]


@contextlib.contextmanager
def dashboards_connected(settings: Settings, workdir: Path, stack: Stack) -> Iterator[None]:
    """``settings.dashboards`` clients reading the gateway's dashboard stream, until exit."""
    log = workdir / "dashboards.log"
    command = [sys.executable, str(BENCH / "dashboards.py"), str(stack.gateway)]
    with contextlib.ExitStack() as running:
        process = spawn(running, [*command, str(settings.dashboards)], log, settings.tool_cpus)
        wait_until(lambda: log.read_text().startswith("connected"), process, log, "the dashboards")
        yield


def dashboards_comparison(
    settings: Settings, workdir: Path, stack: Stack, bodies: Bodies, counters: Counters
) -> dict[str, Load]:
    """The gateway's loads without, with, with and without the dashboards connected."""
    results = {}
    for key, target, connections, streaming in DASHBOARD_CASES:
        body = bodies.streaming if streaming else bodies.plain
        url = target_url(stack, target, streaming)
        with (
            dashboards_connected(settings, workdir, stack)
            if "+dashboards" in key
            else contextlib.nullcontext()
        ):
            results[key] = counters.add(
                run_load(settings, workdir, url, connections, settings.duration, body)
            )
    return results


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu_with_dashboards(settings: Settings, workdir: Path, stack: Stack) -> str:
    """The gateway's CPU use while idle, without and with the dashboards connected."""
    seconds = 5 * settings.duration

    def ms_per_second() -> float:
        before = cpu_seconds(stack.gateway_pid)
        time.sleep(seconds)
        return (cpu_seconds(stack.gateway_pid) - before) / seconds * 1000

    without = ms_per_second()
    with dashboards_connected(settings, workdir, stack):
        with_them = ms_per_second()
    return (
        f"Gateway CPU while idle, over {seconds} s each: {without:.1f} ms per second without "
        f"dashboards, {with_them:.1f} ms per second with {settings.dashboards} connected "
        f"(the snapshot built and sent once a second; {with_them - without:+.1f} ms/s, "
        f"{(with_them - without) / 10:+.2f} % of one core)."
    )


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (``VmRSS`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# --- report --------------------------------------------------------------------------------


def derived(run: dict[str, Load]) -> dict[str, float]:
    """The ratios and differences of one run."""
    dashboards = {}
    if "gateway c16 +dashboards" in run:
        dashboards = {
            "gateway with / without dashboards req/s, c=16": run["gateway c16 +dashboards"].rate
            / run["gateway c16 -dashboards"].rate,
            "gateway with / without dashboards streams/s, c=16": run[
                "gateway stream +dashboards"
            ].rate
            / run["gateway stream -dashboards"].rate,
        }
    if "gateway c16 +spend" in run:
        with_spend, without = run["gateway c16 +spend"], run["gateway c16 -spend"]
        streams_with, streams_without = run["gateway stream +spend"], run["gateway stream -spend"]
        dashboards |= {
            "gateway with / without spend req/s, c=16": with_spend.rate / without.rate,
            "gateway with / without spend streams/s, c=16": streams_with.rate
            / streams_without.rate,
            "gateway with / without spend CPU per request, c=16": with_spend.cpu_us
            / without.cpu_us,
            "gateway with / without spend CPU per stream, c=16": streams_with.cpu_us
            / streams_without.cpu_us,
            "spend added CPU per request, c=16 (µs)": with_spend.cpu_us - without.cpu_us,
            "spend added CPU per stream, c=16 (µs)": streams_with.cpu_us - streams_without.cpu_us,
        }
    if "gateway c16 *spend" in run:
        many, two = run["gateway c16 *spend"], run["gateway c16 +spend"]
        streams_many, streams_two = run["gateway stream *spend"], run["gateway stream +spend"]
        dashboards |= {
            "gateway N / 2 created keys req/s, c=16": many.rate / two.rate,
            "gateway N / 2 created keys streams/s, c=16": streams_many.rate / streams_two.rate,
            "gateway N / 2 created keys CPU per request, c=16": many.cpu_us / two.cpu_us,
        }
    for kind, what in (("c16", "req/s"), ("stream", "streams/s")):
        if f"gateway {kind} +tracing" in run:
            traced, plain = run[f"gateway {kind} +tracing"], run[f"gateway {kind} -tracing"]
            dashboards[f"gateway with / without tracing {what}, c=16"] = traced.rate / plain.rate
            dashboards[f"tracing added CPU per response, {kind} (µs)"] = (
                traced.cpu_us - plain.cpu_us
            )
    dashboards |= client_apis.derived(run)
    return dashboards | {
        "gateway / no-op req/s, c=16": run["gateway c16"].rate / run["noop c16"].rate,
        "gateway / no-op req/s, c=1": run["gateway c1"].rate / run["noop c1"].rate,
        "gateway / direct req/s, c=16": run["gateway c16"].rate / run["direct c16"].rate,
        "gateway / direct req/s, c=1": run["gateway c1"].rate / run["direct c1"].rate,
        "no-op / direct req/s, c=16": run["noop c16"].rate / run["direct c16"].rate,
        "floor / no-op req/s, c=16": run["floor c16"].rate / run["noop c16"].rate,
        "no-op with the gateway's headers / no-op req/s, c=16": run["noop+headers c16"].rate
        / run["noop c16"].rate,
        "gateway / floor req/s, c=16": run["gateway c16"].rate / run["floor c16"].rate,
        "gateway / direct streams/s, c=16": run["gateway stream"].rate / run["direct stream"].rate,
        "added p50 latency, c=1 (ms)": run["gateway c1"].p50_ms - run["direct c1"].p50_ms,
        "added p99 latency, c=1 (ms)": run["gateway c1"].p99_ms - run["direct c1"].p99_ms,
        "floor added p50 latency, c=1 (ms)": run["floor c1"].p50_ms - run["direct c1"].p50_ms,
    }


@dataclass(frozen=True)
class RssResult:
    """The gateway's memory before and after the RSS phase."""

    at_start_mb: float
    before_mb: float
    after_mb: float
    load: Load
    wanted: int

    @property
    def growth_mb(self) -> float:
        return self.after_mb - self.before_mb


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def _ratio(value: float) -> str:
    return f"{value:.3g}"


def _ms(value: float) -> str:
    return f"{value:.3f}"


def _us(value: float) -> str:
    return f"{value:+.0f}"


def _fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def render(
    header: list[str],
    runs: list[dict[str, Load]],
    rss: RssResult,
    counters: Counters,
    spend_redis: bool,
) -> str:
    """The Markdown report: medians side by side, ratios, goals, per-run raw figures."""

    def med(key: str, attribute: str) -> float:
        return float(statistics.median(getattr(run[key], attribute) for run in runs))

    lines = ["# nexus-trio gateway benchmark", ""]
    lines += [f"- {item}" for item in header]
    lines += ["", f"## Medians of {len(runs)} run(s)", ""]
    lines += [
        "| target | req/s c=1 | p50 ms | p99 ms | req/s c=16 | p50 ms | p99 ms "
        "| 20-event streams/s c=16 | p50 ms | p99 ms |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for label, prefix, streaming in [
        ("direct upstream", "direct", True),
        ("gateway", "gateway", True),
        ("bare forwarder (floor)", "floor", False),
        ("no-op ceiling", "noop", False),
        ("no-op + the gateway's 7 headers", "noop+headers", False),
    ]:
        cells = [label]
        for key in (f"{prefix} c1", f"{prefix} c16"):
            cells += [
                _fmt(med(key, "rate")),
                _fmt(med(key, "p50_ms"), 2),
                _fmt(med(key, "p99_ms"), 2),
            ]
        if streaming:
            key = f"{prefix} stream"
            cells += [
                _fmt(med(key, "rate")),
                _fmt(med(key, "p50_ms"), 2),
                _fmt(med(key, "p99_ms"), 2),
            ]
        else:
            cells += ["—", "—", "—"]
        lines.append("| " + " | ".join(cells) + " |")

    per_run = [derived(run) for run in runs]
    ratios = {name: statistics.median(values[name] for values in per_run) for name in per_run[0]}
    lines += ["", "## Ratios", "", "| | median | per run |", "|---|--:|---|"]
    for name, value in ratios.items():
        shown = _ms if name.endswith("(ms)") else _us if name.endswith("(µs)") else _ratio
        each = ", ".join(shown(values[name]) for values in per_run)
        lines.append(f"| {name} | {shown(value)} | {each} |")

    streams = med("gateway stream", "rate")
    errors = counters.non_2xx + counters.socket_errors
    full_rss = rss.load.requests >= rss.wanted
    rss_measured = (
        f"{rss.growth_mb:+.1f} MB ({rss.before_mb:.1f} → {rss.after_mb:.1f} MB "
        f"over {rss.load.requests:,} requests)"
    )
    goals = [
        (
            "gateway req/s at c=16 vs the no-op ceiling",
            f"≥ {GOAL_CEILING_RATIO} x",
            f"{_ratio(ratios['gateway / no-op req/s, c=16'])} x",
            _verdict(ratios["gateway / no-op req/s, c=16"] >= GOAL_CEILING_RATIO),
        ),
        (
            "added p50 latency at c=1",
            f"≤ {GOAL_ADDED_P50_MS:g} ms",
            f"{_ms(ratios['added p50 latency, c=1 (ms)'])} ms",
            _verdict(ratios["added p50 latency, c=1 (ms)"] <= GOAL_ADDED_P50_MS),
        ),
        (
            "20-event streams/s at c=16",
            f"≥ {GOAL_STREAMS_PER_S:g}",
            _fmt(streams),
            _verdict(streams >= GOAL_STREAMS_PER_S),
        ),
        (
            f"RSS growth over {rss.wanted:,} requests",
            f"< {GOAL_RSS_GROWTH_MB:g} MB",
            rss_measured,
            _verdict(rss.growth_mb < GOAL_RSS_GROWTH_MB) if full_rss else "**incomplete**",
        ),
        (
            "non-2xx responses (and socket errors), all loads",
            "0",
            f"{counters.non_2xx} ({counters.socket_errors})",
            _verdict(errors == 0),
        ),
    ]
    for name in ratios:
        if name.startswith("gateway with / without dashboards"):
            goals.append(
                (
                    name.replace("gateway with / without dashboards", "with dashboards connected:"),
                    f"≥ {GOAL_DASHBOARDS_RATIO} x",
                    f"{_ratio(ratios[name])} x",
                    _verdict(ratios[name] >= GOAL_DASHBOARDS_RATIO),
                )
            )
        if name.endswith(" / chat streams/s, c=16"):
            goals.append(
                (
                    f"translated {name.split(' / ')[0].capitalize()} stream vs chat stream, "
                    "streams/s, c=16",
                    f"≥ {client_apis.GOAL_RATIO} x",
                    f"{_ratio(ratios[name])} x",
                    _verdict(ratios[name] >= client_apis.GOAL_RATIO),
                )
            )
        if name.startswith("gateway N / 2 created keys") and "/s" in name:
            goals.append(
                (
                    name.replace("gateway N / 2", "authentication among N vs 2"),
                    f"≥ {GOAL_CREATED_KEYS_RATIO} x",
                    f"{_ratio(ratios[name])} x",
                    _verdict(ratios[name] >= GOAL_CREATED_KEYS_RATIO),
                )
            )
        if name.startswith("gateway with / without spend") and "/s" in name:
            goal = GOAL_SPEND_REDIS_RATIO if spend_redis else GOAL_SPEND_RATIO
            spend = "the ledger and Redis" if spend_redis else "the ledger"
            goals.append(
                (
                    name.replace(
                        "gateway with / without spend",
                        f"with keys, limits, pricing, {spend}:",
                    ),
                    f"≥ {goal} x",
                    f"{_ratio(ratios[name])} x",
                    _verdict(ratios[name] >= goal),
                )
            )
        if name.startswith("gateway with / without tracing"):
            goals.append(
                (
                    name.replace("gateway with / without tracing", "tracing every request:"),
                    f"≥ {GOAL_TRACING_RATIO} x",
                    f"{_ratio(ratios[name])} x",
                    _verdict(ratios[name] >= GOAL_TRACING_RATIO),
                )
            )
    if counters.unexpected or any(name.endswith(" / chat streams/s, c=16") for name in ratios):
        goals.append(
            (
                "client-API answers not the whole stream in their API (wrk, every body)",
                "0",
                str(counters.unexpected),
                _verdict(counters.unexpected == 0),
            )
        )
    lines += ["", "## Goals", "", "| goal | target | measured | |", "|---|---|---|---|"]
    for goal, target, measured, verdict in goals:
        lines.append(f"| {goal} | {target} | {measured} | {verdict} |")
    lines += [
        "",
        f"Gateway RSS: {rss.at_start_mb:.1f} MB when ready, {rss.before_mb:.1f} MB after the "
        f"runs, {rss.after_mb:.1f} MB after {rss.load.requests:,} more requests "
        f"(half streaming, c=16, {rss.load.rate:,.0f} req/s).",
    ]

    lines += ["", "## Per run: req/s (p50 ms)", ""]
    lines += ["| load | " + " | ".join(f"run {n}" for n in range(1, len(runs) + 1)) + " |"]
    lines += ["|---|" + "--:|" * len(runs)]
    for key in runs[0]:
        cells = [f"{_fmt(run[key].rate)} ({run[key].p50_ms:.2f})" for run in runs]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def spend_table(runs: list[dict[str, Load]], redis: bool) -> str:
    """The spend comparison's medians: each gateway's rate, p50 and CPU per response."""
    added = "keys, limits, pricing, ledger" + (", Redis store" if redis else "")
    return pair_table(runs, "spend", added)


def pair_table(runs: list[dict[str, Load]], name: str, added: str) -> str:
    """A with/without comparison's medians (loads ``gateway <kind> ±<name>``)."""

    def med(key: str, attribute: str) -> float:
        return float(statistics.median(getattr(run[key], attribute) for run in runs))

    lines = [
        "| load | gateway | req/s | p50 ms | p99 ms | CPU µs per response |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for kind, label in (("c16", "non-streaming, c=16"), ("stream", "20-event streams, c=16")):
        sides = [("-", "plain"), ("+", added), ("*", f"{added}, N created keys")]
        for side, gateway in sides:
            key = f"gateway {kind} {side}{name}"
            if key not in runs[0]:
                continue
            cells = [_fmt(med(key, "rate")), _fmt(med(key, "p50_ms"), 2)]
            cells += [_fmt(med(key, "p99_ms"), 2), _fmt(med(key, "cpu_us"))]
            lines.append(f"| {label} | {gateway} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe(settings: Settings, notes: list[str]) -> list[str]:
    """The report's header: machine, code, tools, placement, durations."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        cwd=BENCH,
        check=False,
    ).stdout.strip()
    if settings.use_nginx:
        upstream = f"{_version(['nginx', '-v']).split(': ')[-1]} (Debian package), 1 worker"
    else:
        upstream = "built-in bench/static_upstream.py (asyncio; nginx not used)"
    if settings.use_wrk:
        loadgen = f"{_version(['wrk', '-v']).split(' [')[0]} -t1, bench/wrk.lua"
    else:
        loadgen = "bench/pyload.py (asyncio, 1 process; wrk not used)"
    if settings.server_cpus is None or settings.tool_cpus is None:
        placement = "nothing pinned (fewer than 2 CPUs)"
    else:
        placement = (
            f"gateway, floor and no-op apps on CPU {min(settings.server_cpus)}; upstream and "
            f"load generator on CPU {min(settings.tool_cpus)}"
        )
    return [
        f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine: {cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}",
        f"gateway: nexus-trio {commit or 'unknown commit'}",
        f"upstream: {upstream}",
        f"load generator: {loadgen}",
        f"placement: {placement}",
        f"each load: {settings.duration} s after a {settings.warmup} s warm-up of each target; "
        "non-streaming body 700 bytes, streams of 20 content events + finish + [DONE]",
        *notes,
    ]


# --- main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the gateway against its upstream, a bare-forwarder floor and a "
        "no-op ceiling."
    )
    parser.add_argument("--quick", action="store_true", help="2 s loads, 10k RSS requests")
    parser.add_argument("--runs", type=int, help="repetitions, medians reported (default 3)")
    parser.add_argument("--upstream", choices=["auto", "nginx", "builtin"], default="auto")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--dashboards",
        type=int,
        default=0,
        metavar="N",
        help="also measure the gateway with N dashboards connected (same runs)",
    )
    parser.add_argument(
        "--spend",
        action="store_true",
        help="also measure a gateway with two keys, rate limits, pricing and the SQLite ledger "
        "(same runs)",
    )
    parser.add_argument(
        "--spend-redis",
        action="store_true",
        help="with --spend: the spend gateway also syncs through a real redis-server",
    )
    parser.add_argument(
        "--created-keys",
        type=int,
        default=0,
        metavar="N",
        help="with --spend: its keys are created at run time, and a third gateway holds N "
        "created keys (authentication among N vs 2, same runs)",
    )
    parser.add_argument(
        "--client-apis",
        action="store_true",
        help="also measure translated /v1/messages and /v1/responses streams against chat "
        "streams (same gateway, same runs)",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="also measure a gateway tracing every request to an OTLP/HTTP sink (same runs)",
    )
    parser.add_argument(
        "--install", action="store_true", help="apt-get install nginx and wrk if missing (root)"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    use_nginx, use_wrk, notes = choose_tools(args)
    cpus = sorted(os.sched_getaffinity(0))
    two = len(cpus) >= 2
    settings = Settings(
        duration=2 if args.quick else 10,
        warmup=1 if args.quick else 2,
        runs=args.runs or (1 if args.quick else 3),
        rss_requests=10_000 if args.quick else 100_000,
        rss_time_limit=60 if args.quick else 300,
        use_nginx=use_nginx,
        use_wrk=use_wrk,
        server_cpus=frozenset(cpus[:1]) if two else None,
        tool_cpus=frozenset(cpus[1:2]) if two else None,
        dashboards=args.dashboards,
        spend=args.spend or args.spend_redis or args.created_keys > 0,
        spend_redis=args.spend_redis,
        client_apis=args.client_apis,
        created_keys=args.created_keys,
        tracing=args.tracing,
    )
    counters = Counters()
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp,
        start_stack(settings, Path(tmp)) as stack,
    ):
        workdir = Path(tmp)
        bodies = Bodies.write(workdir)
        at_start = rss_mb(stack.gateway_pid)
        for target, streaming in WARMUP:
            body = bodies.streaming if streaming else bodies.plain
            url = target_url(stack, target, streaming)
            counters.add(run_load(settings, workdir, url, 16, settings.warmup, body))
        if settings.client_apis:
            client_apis.check(stack.gateway)
            for name, api in client_apis.APIS.items():
                url = f"http://{HOST}:{stack.gateway}{api.path}"
                counters.add(
                    run_load(
                        settings, workdir, url, 16, settings.warmup, bodies.apis[name], expect=api
                    )
                )
        runs = []
        spend_summaries: list[str] = []
        tracing_summaries: list[str] = []
        for number in range(1, settings.runs + 1):
            print(f"run {number}/{settings.runs} ...", file=sys.stderr, flush=True)
            runs.append(
                one_run(
                    settings, workdir, stack, bodies, counters, spend_summaries, tracing_summaries
                )
            )
        idle_cpu = None
        if settings.dashboards:
            print("idle CPU with and without dashboards ...", file=sys.stderr, flush=True)
            idle_cpu = idle_cpu_with_dashboards(settings, workdir, stack)
        print(f"RSS phase: {settings.rss_requests:,} requests ...", file=sys.stderr, flush=True)
        before = rss_mb(stack.gateway_pid)
        load = counters.add(
            run_load(
                settings,
                workdir,
                target_url(stack, "gateway", False),
                16,
                settings.rss_time_limit,
                bodies.plain,
                alternate=bodies.streaming,
                max_requests=settings.rss_requests,
            )
        )
        rss = RssResult(at_start, before, rss_mb(stack.gateway_pid), load, settings.rss_requests)
    notes.append(
        f"load average (1 min) before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}; "
        "anything else running on the machine skews every figure"
    )
    report = render(describe(settings, notes), runs, rss, counters, settings.spend_redis)
    if idle_cpu is not None:
        report += f"\n## Dashboards while idle\n\n{idle_cpu}\n"
    if settings.client_apis:
        report += (
            f"\n## Client APIs\n\nThe run's gateway, medians of {len(runs)} run(s); each "
            f"kind's two loads of {settings.duration} s merged (order: "
            f"{', '.join(client_apis.ORDER)}); every answer checked to start with its API's "
            f"first event and to hold its last one.\n\n{client_apis.table(runs)}\n"
        )
    if settings.tracing:
        report += (
            f"\n## Tracing gateway\n\nMedians of {len(runs)} run(s), each with its own pair "
            f"of gateways; each side's two loads of {settings.duration} s merged (order: plain, "
            f"traced, traced, plain).\n\n{pair_table(runs, 'tracing', 'tracing every request')}"
            f"\n\nSpans of the traced gateway, per run: {'; '.join(tracing_summaries)}\n"
        )
    if spend_summaries:
        report += (
            f"\n## Spend gateway\n\nMedians of {len(runs)} run(s), each with its own pair of "
            f"gateways; each side's two loads of {settings.duration} s merged.\n\n"
            f"{spend_table(runs, settings.spend_redis)}\n\nAfter the last run (its ledger kept "
            f"across the runs' restarts): {spend_summaries[-1]}\n"
        )
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    path = results / f"{datetime.datetime.now():%Y%m%d-%H%M%S}.md"
    path.write_text(report)
    print(report)
    print(f"written to {path.relative_to(BENCH.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()
