"""The scenarios of ``bench/streams.py`` and its report: rows, same-run ratios and goals.

Fresh-connection scenarios (``--paced``, issue 23), each against the no-op stack and the
gateway, one after the other: (a) 1,000 concurrent streams, first token after 1.5 s, 10 events
300 ms apart; (b) 1,000 non-streaming requests answered after 1.5 s; (c) as (a) with 30 events,
so one more paced event costs (CPU(c) - CPU(a)) / (20 x 1,000); (d) 1,000 streams x 2 events/s
(20 events 500 ms apart, first after 5 s, when every connection is set up), for the delay added
to each event. ``--hold``: (e) 3,000 streams of about 4.5 s (as (a)), through the gateway and
straight to the upstream. Every stream's first event is a random part of a gap later
(``spread``), as independent streams' tokens arrive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stream_clients import Outcome, percentile
from stream_profile import Profile


@dataclass(frozen=True)
class Scenario:
    name: str
    streams: int
    ttft_ms: float
    events: int
    gap_ms: float
    #: Each stream's first event a random part of a gap later, as independent streams are.
    spread: bool = False
    #: Streaming requests (else non-streaming, answered after ``ttft_ms``).
    streaming: bool = True
    #: CPU over the whole scenario, after a warm-up (else from every stream open to the end).
    fresh: bool = False

    def title(self) -> str:
        if not self.streaming:
            return (
                f"{self.name}: {self.streams} non-streaming, answer after {self.ttft_ms / 1000:g} s"
            )
        return (
            f"{self.name}: {self.streams} x {self.events} events / {self.gap_ms:g} ms, "
            f"TTFT {self.ttft_ms / 1000:g} s" + (", spread" if self.spread else "")
        )

    def time_limit(self) -> float:
        """Seconds after which a fresh-connection scenario's clients are cancelled."""
        paced = (self.ttft_ms + self.events * self.gap_ms) / 1000.0
        return paced + max(60.0, self.streams * 0.03)


PACED = (
    Scenario("a-paced-10", 1000, 1500.0, 10, 300.0, spread=True, fresh=True),
    Scenario("b-plain", 1000, 1500.0, 0, 0.0, streaming=False, fresh=True),
    Scenario("c-paced-30", 1000, 1500.0, 30, 300.0, spread=True, fresh=True),
    Scenario("d-2-per-s", 1000, 5000.0, 20, 500.0, spread=True, fresh=True),
)
HOLD = Scenario("e-hold", 3000, 1500.0, 10, 300.0, spread=True, fresh=True)


@dataclass(frozen=True)
class Measured:
    """One fresh-connection scenario against one target."""

    scenario: Scenario
    target: str
    outcome: Outcome
    #: The server's CPU seconds over the scenario.
    cpu: float
    #: Seconds its main thread was runnable but waiting for its core (other load on it).
    waiting: float
    wall: float
    client_cpu: float
    #: The upstream's connections opened and requests served over the scenario, and the most
    #: requests it held at once (zeros for the no-op app).
    upstream: tuple[int, int, int]
    #: Where the server's CPU went (``--py-spy``).
    profile: Profile | None = None

    def all_whole(self) -> bool:
        return self.outcome.whole == self.scenario.streams

    def per_request_ms(self) -> float:
        return 1000.0 * self.cpu / self.scenario.streams

    def delay(self, index: int) -> float | None:
        """The added delay per event in ms, p50 (``index`` 0) or p99 (1); None without any."""
        if not self.outcome.delays:
            return None
        return 1000.0 * percentile(self.outcome.delays, (0.5, 0.99)[index])

    def row(self) -> dict[str, str]:
        outcome, p50, p99 = self.outcome, self.delay(0), self.delay(1)
        connections, requests, peak = self.upstream
        return {
            "scenario": self.scenario.title(),
            "target": self.target,
            "whole / truncated / failed": (
                f"{outcome.whole} / {outcome.truncated} / {outcome.failed}"
            ),
            "upstream connections / requests / peak": (
                f"{connections} / {requests} / {peak}" if requests else "-"
            ),
            "server CPU s": f"{self.cpu:.2f}",
            "server waiting for its core s": f"{self.waiting:.2f}",
            "CPU ms per request": f"{self.per_request_ms():.2f}",
            "added delay p50 / p99 (ms)": "-" if p50 is None else f"{p50:.1f} / {p99:.1f}",
            "client CPU s": f"{self.client_cpu:.1f}",
            "wall s": f"{self.wall:.1f}",
            "errors": ", ".join(f"{k} x{v}" for k, v in sorted(outcome.errors.items())) or "none",
        }


def render(rows: list[dict[str, str]]) -> str:
    """A Markdown table of ``rows`` (the first row's keys are the columns)."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(row.get(k, "") for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def per_event_ms(few: Measured | None, many: Measured | None) -> float | None:
    """The CPU of one more paced event: the difference of two runs over their extra events."""
    if few is None or many is None or not (few.all_whole() and many.all_whole()):
        return None
    extra = (many.scenario.events - few.scenario.events) * few.scenario.streams
    return 1000.0 * (many.cpu - few.cpu) / extra if extra > 0 else None


#: A measure of the no-op stack and of the gateway (None: not measured).
Pair = tuple[float | None, float | None]


def line(label: str, values: Pair, ratio: bool) -> dict[str, str]:
    """One comparison row: the no-op stack's value, the gateway's, and (``ratio``) theirs."""
    noop, gateway = values
    shown = f"{gateway / noop:.2f}" if ratio and noop and gateway is not None else ""
    return {
        "measure": label,
        "no-op": "-" if noop is None else f"{noop:,.3f}",
        "gateway": "-" if gateway is None else f"{gateway:,.3f}",
        "gateway / no-op": shown,
    }


def goal(text: str, measured: str, met: bool | None) -> dict[str, str]:
    verdict = "not run" if met is None else ("met" if met else "not met")
    return {"goal (issue 23)": text, "measured": measured, "verdict": verdict}


#: The per-request comparisons: scenario, label, the goal's limit on the ratio (if any).
PER_REQUEST = (
    ("a-paced-10", "(a) CPU ms per paced stream, 10 events", 1.4),
    ("b-plain", "(b) CPU ms per fresh-connection request, non-streaming", 1.5),
    ("c-paced-30", "(c) CPU ms per paced stream, 30 events", None),
)


def summary(measured: list[Measured]) -> str:
    """The same-run comparison of the fresh-connection scenarios, and the issue's goals."""
    by = {(m.scenario.name, m.target): m for m in measured}

    def each(name: str, value: Callable[[Measured], float | None]) -> Pair:
        noop, gateway = by.get((name, "noop")), by.get((name, "gateway"))
        return (
            None if noop is None else value(noop),
            None if gateway is None else value(gateway),
        )

    rows, goals = [], []
    for name, label, limit in PER_REQUEST:
        rows.append(line(label, each(name, Measured.per_request_ms), ratio=True))
        if limit is not None:
            noop, gateway = by.get((name, "noop")), by.get((name, "gateway"))
            goals.append(ratio_goal(label.split(",")[0], limit, noop, gateway))
    costs = each("c-paced-30", lambda m: per_event_ms(by.get(("a-paced-10", m.target)), m))
    rows.append(line("CPU ms per paced event: (c - a) / (20 x 1,000)", costs, ratio=True))
    rates = (
        None if not costs[0] else 1000.0 / costs[0],
        None if not costs[1] else 1000.0 / costs[1],
    )
    rows.append(line("paced events per core-second at that cost", rates, ratio=False))
    delays = each("d-2-per-s", lambda m: m.delay(0)), each("d-2-per-s", lambda m: m.delay(1))
    for label, values in zip(("p50", "p99"), delays, strict=True):
        rows.append(line(f"(d) added delay {label} ms, 1,000 streams x 2 events/s", values, False))
    goals.append(delay_goal(by.get(("d-2-per-s", "gateway"))))
    goals.append(hold_goal(by.get((HOLD.name, "direct")), by.get((HOLD.name, "gateway"))))
    goals.append(goal("`bench/run.py` (16 connections) within noise of before", "-", None))
    tables = ["## Same run: no-op stack and gateway", render(rows), "## Goals", render(goals)]
    return "\n\n".join(tables)


def ratio_goal(
    what: str, limit: float, noop: Measured | None, gateway: Measured | None
) -> dict[str, str]:
    text = f"{what}: ≤ {limit}x the no-op stack's"
    if noop is None or gateway is None:
        return goal(text, "-", None)
    ratio = gateway.per_request_ms() / noop.per_request_ms()
    whole = noop.all_whole() and gateway.all_whole()
    return goal(
        text, f"{ratio:.2f}x" + ("" if whole else ", not all whole"), whole and ratio <= limit
    )


def delay_goal(gateway: Measured | None) -> dict[str, str]:
    text = "added delay p99 ≤ 25 ms at 1,000 streams x 2 events/s (gateway)"
    p99 = None if gateway is None else gateway.delay(1)
    if gateway is None or p99 is None:
        return goal(text, "-", None)
    whole = gateway.all_whole()
    shown = f"{p99:.1f} ms" + ("" if whole else ", not all whole")
    return goal(text, shown, whole and p99 <= 25.0)


def hold_goal(direct: Measured | None, gateway: Measured | None) -> dict[str, str]:
    text = "3,000 streams of ~4.5 s, fresh connections: all whole, wall ≤ 2 x direct + 5 s"
    if direct is None or gateway is None:
        return goal(text, "-", None)
    limit = 2 * direct.wall + 5.0
    measured = (
        f"gateway {gateway.wall:.1f} s ({gateway.outcome.whole} whole), "
        f"direct {direct.wall:.1f} s ({direct.outcome.whole} whole); limit {limit:.1f} s"
    )
    met = gateway.all_whole() and direct.all_whole() and gateway.wall <= limit
    return goal(text, measured, met)
