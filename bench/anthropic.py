"""The Anthropic translation on the hot path: translated against pass-through, same run.

Run as ``python bench/anthropic.py [--quick] [--runs N]`` from the work tree, in the venv.
It starts, on 127.0.0.1, the static upstream of ``bench/run.py`` (nginx, else
``static_upstream.py``), which answers the same content both ways: an OpenAI chat completion
and 20-event stream under ``/plain`` and ``/stream``, and the equivalent Anthropic message and
event stream (message_start, 20 text deltas, message_delta, message_stop) under
``/anthropic-plain`` and ``/anthropic-stream``; and one gateway with four backends on it: two
``generic`` (pass-through) and two ``anthropic`` (translated both ways).

Each run loads, for ``--duration`` seconds each: non-streaming requests at 1 connection to the
upstream directly and through the gateway, both ways (added p50 = gateway p50 - direct p50 of
the same upstream path), then streams at 16 connections through the gateway, both ways. The
report gives the medians of the runs and the target: translated streams/s ≥ 0.7 x the
pass-through streams/s of the same run. CPU placement as in ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import payloads
import run

GOAL_STREAM_RATIO = 0.7
KEY_ENV = "BENCH_ANTHROPIC_KEY"

GATEWAY_CONFIG = (
    run.GATEWAY_CONFIG
    + """
[[backends]]
name = "claude-plain"
url = "http://{host}:{upstream}/anthropic-plain"
type = "anthropic"
api_key_env = "BENCH_ANTHROPIC_KEY"
models = ["{anthropic_plain}"]

[[backends]]
name = "claude-stream"
url = "http://{host}:{upstream}/anthropic-stream"
type = "anthropic"
api_key_env = "BENCH_ANTHROPIC_KEY"
models = ["{anthropic_stream}"]
"""
)

#: name → (path on the upstream, path on the gateway, model, connections, streaming).
CASES = {
    "direct c1": ("/plain/v1/chat/completions", None, payloads.PLAIN_MODEL, 1, False),
    "pass-through c1": (None, run.CHAT_PATH, payloads.PLAIN_MODEL, 1, False),
    "direct anthropic c1": (
        "/anthropic-plain/v1/messages", None, payloads.ANTHROPIC_PLAIN_MODEL, 1, False
    ),
    "translated c1": (None, run.CHAT_PATH, payloads.ANTHROPIC_PLAIN_MODEL, 1, False),
    "pass-through stream": (None, run.CHAT_PATH, payloads.STREAM_MODEL, 16, True),
    "translated stream": (None, run.CHAT_PATH, payloads.ANTHROPIC_STREAM_MODEL, 16, True),
}  # fmt: skip


@contextlib.contextmanager
def start(settings: run.Settings, workdir: Path) -> Iterator[tuple[int, int]]:
    """The upstream and the gateway; yields their ports once both answer correctly."""
    upstream_port, gateway_port = run.free_port(), run.free_port()
    with contextlib.ExitStack() as stack:
        log = workdir / "upstream.log"
        if settings.use_nginx:
            config = workdir / "nginx.conf"
            config.write_text(run.render_nginx_config(workdir, upstream_port))
            command = ["nginx", "-p", str(workdir), "-e", str(workdir / "error.log")]
            command += ["-c", str(config)]
        else:
            command = [sys.executable, "static_upstream.py", "--port", str(upstream_port)]
        upstream = run.spawn(stack, command, log, settings.tool_cpus)
        run.wait_until(lambda: run.listening(upstream_port), upstream, log, "the upstream")
        config = workdir / "gateway.toml"
        config.write_text(
            GATEWAY_CONFIG.format(
                host=run.HOST,
                port=gateway_port,
                upstream=upstream_port,
                plain=payloads.PLAIN_MODEL,
                stream=payloads.STREAM_MODEL,
                anthropic_plain=payloads.ANTHROPIC_PLAIN_MODEL,
                anthropic_stream=payloads.ANTHROPIC_STREAM_MODEL,
            )
        )
        log = workdir / "gateway.log"
        os.environ[KEY_ENV] = "bench-key"  # inherited by the gateway process
        command = [sys.executable, "-m", "nexus_trio", "serve", "--config", str(config)]
        gateway = run.spawn(stack, command, log, settings.server_cpus)
        run.wait_until(
            lambda: run.request(gateway_port, "GET", "/health")[0] == 200, gateway, log, "gateway"
        )
        check_answers(gateway_port)
        yield upstream_port, gateway_port


def check_answers(gateway: int) -> None:
    """Fail unless the translated answers carry the same content as the pass-through ones."""
    for plain, streamed in (
        (payloads.PLAIN_MODEL, payloads.STREAM_MODEL),
        (payloads.ANTHROPIC_PLAIN_MODEL, payloads.ANTHROPIC_STREAM_MODEL),
    ):
        status, body = run.request(
            gateway, "POST", run.CHAT_PATH, payloads.chat_request(plain, streaming=False)
        )
        if status != 200 or b"lorem ipsum" not in body:
            sys.exit(f"{plain} answered {status} {body[:300]!r}")
        status, body = run.request(
            gateway, "POST", run.CHAT_PATH, payloads.chat_request(streamed, streaming=True)
        )
        events = body.count(b'"content":"token')
        if status != 200 or events != payloads.STREAM_EVENTS or b"error" in body:
            sys.exit(f"{streamed} answered {status} {body[:300]!r}..., not the 20-event stream")
        if not body.endswith(b"data: [DONE]\n\n"):
            sys.exit(f"{streamed} did not end with [DONE]")


def one_run(
    settings: run.Settings, workdir: Path, ports: tuple[int, int], counters: run.Counters
) -> dict[str, run.Load]:
    upstream, gateway = ports
    results = {}
    for name, (direct_path, gateway_path, model, connections, streaming) in CASES.items():
        body = workdir / f"{model}.json"
        body.write_bytes(payloads.chat_request(model, streaming=streaming))
        if direct_path is not None:
            url = f"http://{run.HOST}:{upstream}{direct_path}"
        else:
            url = f"http://{run.HOST}:{gateway}{gateway_path}"
        load = run.run_load(settings, workdir, url, connections, settings.duration, body)
        results[name] = counters.add(load)
    return results


def render(notes: list[str], runs: list[dict[str, run.Load]], counters: run.Counters) -> str:
    def median(name: str, attribute: str) -> float:
        return statistics.median(getattr(r[name], attribute) for r in runs)

    def rate(name: str) -> float:
        return statistics.median(r[name].rate for r in runs)

    added_pass = [r["pass-through c1"].p50_ms - r["direct c1"].p50_ms for r in runs]
    added_translated = [r["translated c1"].p50_ms - r["direct anthropic c1"].p50_ms for r in runs]
    ratios = [r["translated stream"].rate / r["pass-through stream"].rate for r in runs]
    ratio = statistics.median(ratios)
    lines = [
        "# Anthropic translation benchmark",
        "",
        *[f"- {note}" for note in notes],
        "",
        "| | pass-through (`generic`) | translated (`anthropic`) |",
        "|---|---|---|",
        f"| streams/s, 20 events, c=16 | {rate('pass-through stream'):.0f} | "
        f"{rate('translated stream'):.0f} |",
        f"| stream p50 ms, c=16 | {median('pass-through stream', 'p50_ms'):.2f} | "
        f"{median('translated stream', 'p50_ms'):.2f} |",
        f"| non-streaming req/s, c=1 | {rate('pass-through c1'):.0f} | "
        f"{rate('translated c1'):.0f} |",
        f"| direct-to-upstream p50 ms, c=1 | {median('direct c1', 'p50_ms'):.3f} | "
        f"{median('direct anthropic c1', 'p50_ms'):.3f} |",
        f"| gateway p50 ms, c=1 | {median('pass-through c1', 'p50_ms'):.3f} | "
        f"{median('translated c1', 'p50_ms'):.3f} |",
        f"| added p50 ms, c=1 | {statistics.median(added_pass):.3f} | "
        f"{statistics.median(added_translated):.3f} |",
        "",
        f"Translated / pass-through streams/s, median of the per-run ratios (each run loads "
        f"both back to back): **{ratio:.2f}** (per run: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; ratio of the medians above: "
        f"{rate('translated stream') / rate('pass-through stream'):.2f}); target ≥ "
        f"{GOAL_STREAM_RATIO}: **{'met' if ratio >= GOAL_STREAM_RATIO else 'NOT met'}**.",
        f"Non-2xx responses: {counters.non_2xx}; socket errors: {counters.socket_errors}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s loads, one run")
    parser.add_argument("--runs", type=int, help="repetitions, medians reported (default 3)")
    parser.add_argument("--upstream", choices=["auto", "nginx", "builtin"], default="auto")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--install", action="store_true", help="apt-get nginx and wrk (root)")
    args = parser.parse_args()
    use_nginx, use_wrk, notes = run.choose_tools(args)
    cpus = sorted(os.sched_getaffinity(0))
    two = len(cpus) >= 2
    settings = run.Settings(
        duration=2 if args.quick else 10,
        warmup=1 if args.quick else 2,
        runs=args.runs or (1 if args.quick else 3),
        rss_requests=0,
        rss_time_limit=0,
        use_nginx=use_nginx,
        use_wrk=use_wrk,
        server_cpus=frozenset(cpus[:1]) if two else None,
        tool_cpus=frozenset(cpus[1:2]) if two else None,
    )
    notes.append(f"upstream: {'nginx' if use_nginx else 'static_upstream.py (asyncio)'}; "
                 f"load generator: {'wrk' if use_wrk else 'pyload.py (asyncio)'}; "
                 f"{settings.runs} run(s) of {settings.duration} s per load")  # fmt: skip
    counters = run.Counters()
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp,
        start(settings, Path(tmp)) as ports,
    ):
        workdir = Path(tmp)
        # a warm-up pass (not reported): first requests, imports, pools
        one_run(dataclasses.replace(settings, duration=settings.warmup), workdir, ports, counters)
        runs = []
        for number in range(1, settings.runs + 1):
            print(f"run {number}/{settings.runs} ...", file=sys.stderr, flush=True)
            runs.append(one_run(settings, workdir, ports, counters))
    notes.append(f"load average (1 min) before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(render(notes, runs, counters))


if __name__ == "__main__":
    main()
