"""The ``nexus-trio`` command line (docs/cli.md#command-line). Exit codes: 0 ok, 1 runtime/config
error, 2 usage."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import TypeVar

import trio

from nexus_trio import __version__
from nexus_trio.cli.check_config import check_config
from nexus_trio.cli.demo import run_demo
from nexus_trio.cli.demo_traffic import left_out_of_access_log
from nexus_trio.cli.key_admin import add_keys_parser, run_keys
from nexus_trio.cli.models_command import add_models_parser, run_models
from nexus_trio.cli.spend_report import render_ledger
from nexus_trio.cli.status_report import StatusUnavailable, fetch_stats, render_status
from nexus_trio.config import Overrides, config_warnings, load_config, resolve_config_path
from nexus_trio.errors import ConfigError, ListenError, StateError
from nexus_trio.runtime.gc_tuning import tune_for_serving
from nexus_trio.runtime.logs import configure_logging
from nexus_trio.runtime.supervisor import Supervisor
from nexus_trio.simulator import FailMode, SimulatedBackend, SimulatorOptions
from nexus_trio.spend import Ledger, month_of

log = logging.getLogger("nexus_trio.cli")

E = TypeVar("E", bound=BaseException)
T = TypeVar("T")

#: The errors that end start-up with one line and exit status 1, never a traceback.
StartFailure = ListenError | ConfigError | StateError
_START_FAILURES = (ListenError, ConfigError, StateError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nexus-trio", description="OpenAI-compatible LLM gateway daemon on Trio."
    )
    parser.add_argument("--version", action="version", version=f"nexus-trio {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway daemon")
    serve.add_argument(
        "--config", help="config file (default: $NEXUS_CONFIG, /etc/nexus-trio/nexus.toml)"
    )
    serve.add_argument("--host", help="listen address (overrides server.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides server.port)")
    serve.add_argument("--log-level", help="debug|info|warning|error")

    check = commands.add_parser("check-config", help="validate a config file and print it")
    check.add_argument("path")
    check.add_argument(
        "--env-file",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="judge with the variables of this systemd EnvironmentFile alone (repeatable)",
    )

    _simulate_arguments(commands.add_parser("simulate", help="run a simulated inference backend"))

    demo = commands.add_parser("demo", help="gateway + two simulated backends, ready to curl")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument(
        "--traffic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send a few demo requests per second so the dashboard shows routing learn",
    )
    demo.add_argument(
        "--log-traffic",
        action="store_true",
        help="write the demo traffic's requests to the access log too",
    )

    status = commands.add_parser("status", help="backends, health and quality of a gateway")
    status.add_argument("--url", default="http://127.0.0.1:8000")
    status.add_argument("--api-key", help="inbound key (default: $NEXUS_API_KEY)")

    add_keys_parser(commands)
    add_models_parser(commands)

    spend = commands.add_parser("spend", help="print the spend ledger of a month (read-only)")
    spend.add_argument("--month", type=_month, help="YYYY-MM (default: this UTC month)")
    spend.add_argument(
        "--state-dir", help="the ledger's directory (default: [state] dir of the config)"
    )
    spend.add_argument(
        "--config", help="config file (default: $NEXUS_CONFIG, /etc/nexus-trio/nexus.toml)"
    )
    return parser


def _simulate_arguments(simulate: argparse.ArgumentParser) -> None:
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, required=True)
    simulate.add_argument("--model", action="append", dest="models", metavar="M")
    simulate.add_argument(
        "--embedding-model",
        action="append",
        dest="embedding_models",
        metavar="M",
        help="a model that answers /v1/embeddings (repeatable)",
    )
    simulate.add_argument("--ttft-ms", type=float, default=50.0)
    simulate.add_argument("--tokens-per-second", type=float, default=100.0)
    simulate.add_argument("--completion-tokens", type=int, default=20)
    simulate.add_argument("--error-rate", type=float, default=0.0)
    simulate.add_argument(
        "--fail-mode", choices=[mode.value for mode in FailMode], default=FailMode.HTTP_500.value
    )
    simulate.add_argument("--load-ms", type=float, default=0.0, help="model load time")
    simulate.add_argument("--max-loaded", type=int, default=0, help="models held at once")


def _month(value: str) -> str:
    """``--month``: a ``YYYY-MM`` month (an argparse type)."""
    try:
        dt.datetime.strptime(value, "%Y-%m")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {value!r}") from None
    if len(value) != 7:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {value!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check-config":
            return check_config(Path(args.path), args.env_file)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "status":
            return _status(args)
        if args.command == "spend":
            return _spend(args)
        if args.command == "keys":
            return run_keys(args)
        if args.command == "models":
            return run_models(args)
        return _demo(args)
    except ConfigError as exc:
        print(f"nexus-trio: configuration error: {exc}", file=sys.stderr)
        return 1
    except StateError as exc:
        print(f"nexus-trio: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1


def _serve(args: argparse.Namespace) -> int:
    overrides = Overrides(host=args.host, port=args.port, log_level=args.log_level)
    path = resolve_config_path(args.config, os.environ)
    config = load_config(path, env=os.environ, overrides=overrides)
    configure_logging(config.logging.level, config.logging.format)
    if path is None:
        log.warning("no config file found; running with built-in defaults")
    else:
        log.info("configuration loaded from %s", path)
    for warning in config_warnings(config, os.environ):
        log.warning("%s", warning)
    supervisor = Supervisor(config, config_path=path, overrides=overrides)
    frozen = tune_for_serving()
    log.debug("garbage collector: %d start-up objects frozen", frozen)
    outcome = _run_daemon(supervisor.run)
    if isinstance(outcome, StartFailure):
        _print_failure(outcome)
        return 1
    return 1 if supervisor.forced else 0


def _print_failure(failure: StartFailure, hint: str = "") -> None:
    what = "configuration error: " if isinstance(failure, ConfigError) else ""
    print(f"nexus-trio: {what}{failure}{hint}", file=sys.stderr)


def _run_daemon(main: Callable[[], Awaitable[T]]) -> T | StartFailure:
    """``trio.run(main)``: what ``main`` returns, or the fatal start-up error that ended it
    (returned, to be printed in one line, not raised)."""
    outcome: T | StartFailure
    try:
        outcome = trio.run(main)
    except* _START_FAILURES as group:
        outcome = _first(group)
    return outcome


def _first(group: BaseExceptionGroup[E]) -> E:
    """The first leaf exception of a (possibly nested) group."""
    leaf = group.exceptions[0]
    return _first(leaf) if isinstance(leaf, BaseExceptionGroup) else leaf


def _status(args: argparse.Namespace) -> int:
    api_key = args.api_key or os.environ.get("NEXUS_API_KEY")
    try:
        stats = fetch_stats(args.url, api_key)
    except StatusUnavailable as exc:
        print(f"nexus-trio: {exc}", file=sys.stderr)
        return 1
    print(render_status(args.url, stats))
    return 0


def _spend(args: argparse.Namespace) -> int:
    """Print a month of the ledger; the directory from ``--state-dir`` or the config."""
    if args.state_dir is not None:
        directory = Path(args.state_dir)
    else:
        path = resolve_config_path(args.config, os.environ)
        config = load_config(path, env=os.environ, overrides=Overrides())
        directory = Path(config.state.dir)
    month = args.month or month_of(time.time())
    ledger = Ledger.open_read_only(directory)
    try:
        rows = ledger.month(month)
    finally:
        ledger.close()
    print(render_ledger(month, rows))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    configure_logging("info", "text")
    options = SimulatorOptions(
        host=args.host,
        port=args.port,
        models=tuple(args.models or ([] if args.embedding_models else ["demo"])),
        embedding_models=tuple(args.embedding_models or ()),
        ttft_ms=args.ttft_ms,
        tokens_per_second=args.tokens_per_second,
        completion_tokens=args.completion_tokens,
        error_rate=args.error_rate,
        fail_mode=FailMode(args.fail_mode),
        load_ms=args.load_ms,
        max_loaded=args.max_loaded,
    )

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(SimulatedBackend(options).run)
            print(f"simulated backend listening on http://{options.host}:{port}", flush=True)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(run)
    except OSError as exc:
        print(
            f"nexus-trio: cannot listen on port {args.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    """The demo, its ledger in a temporary directory removed when it ends, however it ends,
    its traffic out of the access log unless ``--log-traffic`` (docs/cli.md#demo)."""
    configure_logging("info", "text")
    tune_for_serving()
    quiet = nullcontext() if args.log_traffic else left_out_of_access_log()
    with tempfile.TemporaryDirectory(prefix="nexus-trio-demo-") as state_dir, quiet:
        outcome = _run_daemon(partial(run_demo, args.port, Path(state_dir), traffic=args.traffic))
    if isinstance(outcome, StartFailure):
        hint = " (choose another with --port N)" if isinstance(outcome, ListenError) else ""
        _print_failure(outcome, hint)
        return 1
    return outcome
