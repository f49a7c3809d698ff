"""Where a server's CPU goes in ``bench/streams.py``'s fresh-connection scenarios (``--py-spy``).

While a scenario runs, ``py-spy record`` samples the server under test (the gateway or the
no-op app; py-spy pinned with the clients). It pauses the server for each sample: with
``--nonblocking`` a server busy on a core of its own gave torn stacks (two thirds of them not
reaching the interpreter's entry), so the profiled run is slower than a plain one (at 200
samples a second the gateway's CPU per request rose by about a tenth) and its CPU figures are
not the ones to quote. py-spy leaves out threads that are not running, so a
sample is a moment of CPU, but for one case: a thread woken from ``epoll_wait`` and waiting for
its core counts as running, so the samples in the run loop's I/O wait are left out (and counted
apart), and so are an idle worker thread's (trio's thread cache keeps one blocked on a lock
after the gateway's first worker-thread call, and py-spy counts it as running: before it was
left out it took 43 % of a gateway's samples). A function's share of the remaining samples
where it runs itself (self), times the server's CPU per request, is its CPU per request; a
garbage collection counts as the self time of the function whose allocation triggered it. The
report compares, by package and by function,
the gateway with the no-op stack per paced stream (a), per fresh-connection request (b), per
paced event ((c) - (a) over the extra events) and per event of (d)'s event phase (sampled apart
from just before the first token). Sampling noise is a few per cent of a share; a row under
about 20 µs per request says little. Needs ``pip install py-spy`` and ptrace (root or
``kernel.yama.ptrace_scope = 0``).
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from profile_gateway import frame_name

#: Samples per second: about a thousand per scenario and target; each pauses the server.
RATE = 200


#: The run loop's wait for I/O: a sample here is a thread woken from ``epoll_wait`` but not yet
#: on the core (the state is "running" once it is runnable), not CPU spent in the function.
WAITING = "trio/_core/_io_epoll.EpollIOManager.get_events"
#: An idle worker thread of trio's thread cache, blocked on its lock with a timeout: py-spy
#: counts it as running (a C call holding no GIL), so every sample would add one.
IDLE_WORKER = "trio/_core/_thread_cache.WorkerThread._work"


@dataclass(frozen=True)
class Profile:
    """Self samples by function and by package; the samples left out as waiting."""

    functions: collections.Counter[str]
    packages: collections.Counter[str]
    total: int
    waiting: int

    @classmethod
    def parse(cls, raw: str) -> Profile:
        functions: collections.Counter[str] = collections.Counter()
        packages: collections.Counter[str] = collections.Counter()
        total = waiting = 0
        for line in raw.splitlines():
            stack, _, count_text = line.rpartition(" ")
            frames = [frame for frame in stack.split(";") if frame]
            if not frames or not count_text.isdigit():
                continue
            package, function = frame_name(frames[-1])
            if function in (WAITING, IDLE_WORKER):
                waiting += int(count_text)
                continue
            functions[function] += int(count_text)
            packages[package] += int(count_text)
            total += int(count_text)
        return cls(functions, packages, total, waiting)

    def per_request_us(self, cpu_per_request_ms: float) -> dict[str, dict[str, float]]:
        """µs of CPU per request by function and by package (``"functions"``, ``"packages"``)."""
        scale = 1000.0 * cpu_per_request_ms / self.total if self.total else 0.0
        return {
            "functions": {name: count * scale for name, count in self.functions.items()},
            "packages": {name: count * scale for name, count in self.packages.items()},
        }


def py_spy() -> str | None:
    """The py-spy executable: on the PATH, or beside this interpreter (a venv not activated)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


class Sampler:
    """One ``py-spy record`` of a process, from :meth:`start` to :meth:`stop`."""

    def __init__(self, pid: int, raw_path: Path, core: int) -> None:
        self.pid, self.raw_path, self.core = pid, raw_path, core
        self.spy: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [py_spy() or "py-spy", "record", "--pid", str(self.pid), "--rate", str(RATE)]
        command += ["--format", "raw", "--function"]
        command += ["--output", str(self.raw_path)]
        command = ["taskset", "-c", str(self.core), *command]
        self.spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> Profile | None:
        """Stop py-spy (SIGINT, then 30 s to write its file, else killed); the profile."""
        if self.spy is None:
            return None
        self.spy.send_signal(signal.SIGINT)
        try:
            self.spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.spy.kill()
            self.spy.wait()
        self.spy = None
        return Profile.parse(self.raw_path.read_text()) if self.raw_path.exists() else None


def table(title: str, columns: dict[str, dict[str, float]], top: int, order: str) -> list[str]:
    """A Markdown table of µs by name, one column per entry of ``columns``, the ``top`` rows
    largest in column ``order``."""
    names = sorted(columns[order], key=lambda name: -columns[order][name])[:top]
    lines = [f"| {title} | " + " | ".join(columns) + " |", "|---|" + "--:|" * len(columns)]
    for name in names:
        cells = [f"{column.get(name, 0.0):,.1f}" for column in columns.values()]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return lines


def difference(many: dict[str, float], few: dict[str, float], events: int) -> dict[str, float]:
    """Per extra event: (``many`` - ``few``) / ``events``, by name (µs per request in, µs out)."""
    return {name: (many.get(name, 0.0) - few.get(name, 0.0)) / events for name in many}


#: Sections of the report: title, the scenario with the streams, the one it is compared with
#: (its difference divided by the extra events per stream), or None.
SECTIONS = (
    ("(a) µs of CPU per paced stream (10 events)", "a-paced-10", None),
    ("(b) µs of CPU per fresh-connection request (non-streaming)", "b-plain", None),
    ("µs of CPU per paced event, ((c) - (a)) / 20", "c-paced-30", ("a-paced-10", 20)),
    (
        "(d) µs of CPU per event, from just before the first token (every connection set up)",
        "d-2-per-s events",
        None,
    ),
)


def unit(name: str) -> str:
    """What a profile's figures are per: an event for an event phase, else a request."""
    return "event" if name.endswith(" events") else "request"


def report(profiles: dict[tuple[str, str], tuple[Profile, float]], top: int = 25) -> str:
    """The profile tables: for each section, by package and by function, one column a target.

    ``profiles`` maps (scenario name, target) to the profile and the CPU ms per request; a
    stream scenario's event phase is there as (``"<name> events"``, target), per event.
    """
    lines = ["## Where the CPU goes (py-spy, self time)"]
    named = {name for _, name, _ in SECTIONS}
    others = sorted(
        name
        for name in {name for name, _ in profiles} - named
        if name.removesuffix(" events") not in named  # (a)'s and (c)'s overlap their set-up
    )
    sections = [
        *SECTIONS,
        *((f"µs of CPU per {unit(name)}, {name}", name, None) for name in others),
    ]
    for title, name, base in sections:
        columns: dict[str, dict[str, dict[str, float]]] = {"packages": {}, "functions": {}}
        for target in ("noop", "direct", "gateway"):
            if (name, target) not in profiles:
                continue
            profile, per_request = profiles[(name, target)]
            shares = profile.per_request_us(per_request)
            if base is not None:
                if (base[0], target) not in profiles:
                    continue
                few_profile, few_per_request = profiles[(base[0], target)]
                few = few_profile.per_request_us(few_per_request)
                shares = {k: difference(shares[k], few[k], base[1]) for k in shares}
            for kind in columns:
                columns[kind][target] = shares[kind]
        if not columns["functions"]:
            continue
        waits = ", ".join(
            f"{target} {100 * p.waiting / max(1, p.waiting + p.total):.0f} %"
            for (scenario, target), (p, _) in sorted(profiles.items())
            if scenario == name
        )
        lines += [
            "",
            f"### {title}",
            "",
            f"Samples left out as waiting for I/O or idle worker threads: {waits}.",
            "",
        ]
        order = "gateway" if "gateway" in columns["functions"] else next(iter(columns["functions"]))
        lines += table("package", columns["packages"], top, order)
        lines += [""]
        lines += table("function", columns["functions"], top, order)
    return "\n".join(lines)
