"""Exact Python calls per fresh-connection request: the gateway beside the no-op stack.

Run as ``python bench/stream_calls.py [--clients N] [--streaming]`` (about a minute). It runs
issue 23's scenario (b) of ``bench/streams.py`` — N clients at once, each on a new connection,
one non-streaming request answered after 1.5 s (with ``--streaming``: scenario (a)'s stream of
10 events 300 ms apart) — against the no-op stack, the bare forwarder (``floor_app.py``: the
gateway's server stack and upstream transport, no gateway logic) and the gateway, each server
under cProfile (the forwarder only for (b): it cannot relay a stream), twice: with N and with
2N clients. A function's calls per request are the difference
between the two runs' counts divided by N, so the start-up and the warm-up cancel out and what
is left is exact, not sampled. The report gives calls per request by package (the gateway's own
modules by package of ``nexus_trio``) and the functions whose counts differ most, plus the
cancel scopes and task spawns per request.

Calls are not time (a C call such as a socket ``send`` costs more than most Python calls; cProfile
itself slows every call), but on this stack the CPU per request follows the Python calls made:
it is the measure for where the gateway's extra work is, and ``--py-spy`` of ``streams.py`` the
one for its time.
"""

from __future__ import annotations

import argparse
import collections
import pstats
import resource
import sys
import tempfile
from pathlib import Path

import streams
import trio
from stream_report import Scenario

#: Packages named by the directory after ``site-packages/``; the gateway's by its subpackage.
_STDLIB = "python3.11/"


def package_of(filename: str) -> str:
    """The package a profiled function belongs to."""
    if "nexus_trio/" in filename:
        return "nexus_trio." + filename.split("nexus_trio/", 1)[1].split("/")[0].removesuffix(".py")
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/")[0].removesuffix(".py")
    if filename == "~":
        return "(built-in functions)"
    if filename.startswith("<"):
        return filename.split(" ")[0] + ">" if " " in filename else filename
    return "(standard library)"


def counts(path: Path) -> collections.Counter[tuple[str, str]]:
    """Calls by (package, function) in one cProfile statistics file."""
    found: collections.Counter[tuple[str, str]] = collections.Counter()
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    for (filename, line, name), (_, calls, *_rest) in stats.items():
        short = filename.rsplit("/", 1)[-1]
        found[package_of(filename), f"{short}:{line}({name})"] += calls
    return found


def per_request(
    small: collections.Counter[tuple[str, str]], large: collections.Counter[tuple[str, str]], n: int
) -> dict[tuple[str, str], float]:
    return {key: (large[key] - small[key]) / n for key in large.keys() | small.keys()}


def measure(scenario: Scenario, target: str, workdir: Path) -> collections.Counter[tuple[str, str]]:
    path = workdir / f"{target}-{scenario.streams}.prof"
    with streams.servers(scenario, target, workdir, profile_to=path) as server:
        run = trio.run(streams.drive_fresh, scenario, target, server, None)
    if run.outcome.whole != scenario.streams:
        sys.exit(f"{target}: {run.outcome.whole} of {scenario.streams} answers whole")
    return counts(path)


def table(per: dict[str, dict[tuple[str, str], float]]) -> str:
    """Calls per request by package, one column per target, largest for the gateway first."""
    targets = list(per)
    by_package: dict[str, list[float]] = collections.defaultdict(lambda: [0.0] * len(targets))
    for index, target in enumerate(targets):
        for (package, _), value in per[target].items():
            by_package[package][index] += value
    rows = sorted(by_package.items(), key=lambda item: -item[1][-1])
    lines = [f"| package | {' | '.join(targets)} |", "|---|" + "--:|" * len(targets)]
    for package, values in rows:
        if max(abs(value) for value in values) >= 0.5:
            lines.append(f"| `{package}` | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    totals = [sum(per[target].values()) for target in targets]
    lines.append("| **all** | " + " | ".join(f"**{v:.0f}**" for v in totals) + " |")
    return "\n".join(lines)


def differences(per: dict[str, dict[tuple[str, str], float]]) -> str:
    """The 25 functions the gateway calls most more often than the no-op stack."""
    noop, gateway = per["noop"], per["gateway"]
    keys = noop.keys() | gateway.keys()
    ranked = sorted(keys, key=lambda key: -(gateway.get(key, 0.0) - noop.get(key, 0.0)))[:25]
    lines = [f"| function | {' | '.join(per)} |", "|---|" + "--:|" * len(per)]
    for key in ranked:
        values = " | ".join(f"{calls.get(key, 0.0):.1f}" for calls in per.values())
        lines.append(f"| `{key[0]}` {key[1]} | {values} |")
    return "\n".join(lines)


def landmarks(calls: dict[tuple[str, str], float]) -> str:
    """Cancel scopes entered (trio's only ``__enter__`` in ``_run.py``) and tasks spawned."""

    def total(prefix: str, name: str) -> float:
        return sum(
            value
            for (package, function), value in calls.items()
            if package == "trio" and function.startswith(prefix) and function.endswith(name)
        )

    scopes, tasks = total("_run.py:", "(__enter__)"), total("_run.py:", "(spawn_impl)")
    return f"cancel scopes {scopes:.1f}, tasks spawned {tasks:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500, help="N (the second run: 2N)")
    parser.add_argument("--streaming", action="store_true", help="scenario (a) instead of (b)")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    streams.pin(1)
    n = args.clients
    per: dict[str, dict[tuple[str, str], float]] = {}
    with tempfile.TemporaryDirectory(prefix="nexus-calls-") as tmp:
        for target in ("noop", "gateway") if args.streaming else ("noop", "floor", "gateway"):
            found = []
            for clients in (n, 2 * n):
                scenario = Scenario(
                    "calls", clients, 1500.0, 10, 300.0, streaming=args.streaming, fresh=True
                )
                found.append(measure(scenario, target, Path(tmp)))
            per[target] = per_request(found[0], found[1], n)
    what = "stream (scenario (a))" if args.streaming else "non-streaming request (scenario (b))"
    print(f"## Python calls per fresh-connection {what}, N = {n}\n")
    print(table(per))
    print("\n" + "; ".join(f"{target}: {landmarks(calls)}" for target, calls in per.items()) + "\n")
    print(differences(per))


if __name__ == "__main__":
    main()
