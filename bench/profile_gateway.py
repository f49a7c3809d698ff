"""Profile the gateway under the benchmark's load: where its CPU goes, by package and function.

Run as ``python bench/profile_gateway.py [--seconds 10] [--connections 16] [--stream]
[--spend]`` from the work tree, in the venv, with ``py-spy`` installed (``pip install py-spy``;
it needs ptrace, so root or ``kernel.yama.ptrace_scope = 0``). It starts the same stack as
``bench/run.py`` (nginx or the built-in upstream, the gateway), warms up, then samples the
gateway with ``py-spy record`` while wrk (or the Python load generator) drives it, and prints:

- the share of samples in each package, inclusive (the package is anywhere on the stack) and
  self (the package's code is running);
- the top functions by inclusive and by self share (leaving out the frames on nearly every
  stack: the interpreter's and the run loop's).

With ``--spend`` it profiles the spend gateway of ``bench/run.py --spend`` instead (two named
keys with limits, pricing, budgets, the ledger; the load alternates between the keys).

The raw collapsed stacks are kept in ``bench/results/profile-<timestamp>.txt`` (git-ignored)
for a flame graph (``flamegraph.pl`` or speedscope).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run
import spend_gateway

#: Packages reported on their own; everything else is "other".
PACKAGES = [
    "nexus_trio",
    "quart_trio",
    "quart",
    "werkzeug",
    "hypercorn",
    "h11",
    "httpx",
    "trio",
    "msgspec",
    "prometheus_client",
]
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")


def frame_package(file: str) -> str:
    """The package a frame's file belongs to (``other`` when not one of :data:`PACKAGES`).

    py-spy names files relative to their ``sys.path`` entry (``quart/app.py``), so the
    package is the first component.
    """
    first = file.split("/", 1)[0]
    return first if first in PACKAGES else "other"


def frame_name(frame: str) -> tuple[str, str]:
    """``("package", "module.function")`` of one py-spy frame ``function (file:line)``."""
    match = _FRAME.match(frame)
    if match is None:
        return "other", frame
    file = match["file"]
    return frame_package(file), f"{file.removesuffix('.py')}.{match['function']}"


def summarise(raw: str, top: int) -> str:
    """Markdown tables of package and function shares from py-spy's ``raw`` output."""
    total = 0
    package_incl: collections.Counter[str] = collections.Counter()
    package_self: collections.Counter[str] = collections.Counter()
    function_incl: collections.Counter[str] = collections.Counter()
    function_self: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [frame_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        for package in {package for package, _ in frames}:
            package_incl[package] += count
        for name in {name for _, name in frames}:
            function_incl[name] += count
        package_self[frames[-1][0]] += count
        function_self[frames[-1][1]] += count
    if not total:
        return "no samples"

    def share(count: int) -> str:
        return f"{100 * count / total:.1f}%"

    lines = [f"{total:,} samples", "", "| package | inclusive | self |", "|---|--:|--:|"]
    for package, count in package_incl.most_common():
        lines.append(f"| {package} | {share(count)} | {share(package_self[package])} |")
    # Frames on (nearly) every stack — the interpreter's, the run loop's — say nothing.
    roots = {name for name, count in function_incl.items() if count >= 0.95 * total}
    for title, counter in (("inclusive", function_incl), ("self", function_self)):
        ranked = [(name, count) for name, count in counter.most_common() if name not in roots]
        lines += ["", f"| top functions, {title} | share |", "|---|--:|"]
        lines += [f"| `{name}` | {share(count)} |" for name, count in ranked[:top]]
    return "\n".join(lines)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="20-event streams, not plain")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument(
        "--spend", action="store_true", help="the gateway with keys, limits, pricing, ledger"
    )
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    use_nginx, use_wrk = shutil.which("nginx") is not None, shutil.which("wrk") is not None
    cpus = sorted(os.sched_getaffinity(0))
    two = len(cpus) >= 2
    settings = run.Settings(
        duration=args.seconds,
        warmup=2,
        runs=1,
        rss_requests=0,
        rss_time_limit=0,
        use_nginx=use_nginx,
        use_wrk=use_wrk,
        server_cpus=frozenset(cpus[:1]) if two else None,
        tool_cpus=frozenset(cpus[1:2]) if two else None,
    )
    results = run.BENCH / "results"
    results.mkdir(exist_ok=True)
    raw_path = results / f"profile-{datetime.datetime.now():%Y%m%d-%H%M%S}.txt"
    with (
        tempfile.TemporaryDirectory(prefix="nexus-profile-") as tmp,
        run.start_stack(settings, Path(tmp)) as stack,
        contextlib.ExitStack() as spend,
    ):
        workdir = Path(tmp)
        bodies = run.Bodies.write(workdir)
        body = bodies.streaming if args.stream else bodies.plain
        target, pid, keys = "gateway", stack.gateway_pid, ()
        url = run.target_url(stack, target, args.stream)
        if args.spend:
            pair = spend.enter_context(run.start_spend_pair(settings, workdir, stack, 1))
            target, pid, keys = "spend gateway", pair.spend_pid, spend_gateway.KEYS
            url = f"http://{run.HOST}:{pair.spend}{run.CHAT_PATH}"
        run.run_load(settings, workdir, url, args.connections, settings.warmup, body, keys=keys)
        command = ["py-spy", "record", "--pid", str(pid), "--rate", str(args.rate)]
        command += ["--duration", str(args.seconds), "--format", "raw", "--function"]
        command += ["--output", str(raw_path)]
        spy = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)  # py-spy attaches before the load starts; the load outlasts it
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        load = run.run_load(
            settings, workdir, url, args.connections, args.seconds + 1, body, keys=keys
        )
        busy = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
        _, error = spy.communicate(timeout=args.seconds + 30)
        if spy.returncode != 0 or not raw_path.exists():
            sys.exit(f"py-spy failed ({spy.returncode}): {error.decode(errors='replace')}")
    what = "20-event streams" if args.stream else "plain completions"
    print(
        f"{target} under {what} at c={args.connections}: {load.rate:,.0f} req/s while sampled, "
        f"{100 * busy:.0f}% of a core busy, {1e6 * busy / load.rate:,.0f} µs of CPU per request"
    )
    print(summarise(raw_path.read_text(), args.top))
    print(f"raw stacks: {raw_path.relative_to(run.BENCH.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()
