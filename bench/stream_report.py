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

import statistics
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
    #: Its CPU seconds from just before the first token was due to the end (streams only).
    cpu_events: float | None
    #: Seconds its main thread was runnable but waiting for its core (other load on it).
    waiting: float
    wall: float
    client_cpu: float
    #: The upstream's connections opened and requests served over the scenario, and the most
    #: requests it held at once (zeros for the no-op app).
    upstream: tuple[int, int, int]
    #: Where the server's CPU went (``--py-spy``), and in a stream's event phase.
    profile: Profile | None = None
    event_profile: Profile | None = None
    #: Which repetition of the scenario set (``--rounds``).
    round: int = 0

    def all_whole(self) -> bool:
        return self.outcome.whole == self.scenario.streams

    def per_request_ms(self) -> float:
        return 1000.0 * self.cpu / self.scenario.streams

    def per_event_ms(self) -> float | None:
        """CPU per event from just before the first token to the end (all whole only)."""
        events = self.scenario.events * self.scenario.streams
        if self.cpu_events is None or not events or not self.all_whole():
            return None
        return 1000.0 * self.cpu_events / events

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
            "round": str(self.round + 1),
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


class Rounds:
    """The measurements of one invocation, by scenario, target and round."""

    def __init__(self, measured: list[Measured]) -> None:
        self.runs = {(m.scenario.name, m.target, m.round): m for m in measured}
        self.rounds = sorted({m.round for m in measured})

    def get(self, name: str, target: str, round_: int) -> Measured | None:
        return self.runs.get((name, target, round_))

    def values(
        self, name: str, target: str, value: Callable[[Measured], float | None]
    ) -> list[float | None]:
        """``value`` of each round's run (None where there is none)."""
        runs = [self.get(name, target, r) for r in self.rounds]
        return [None if m is None else value(m) for m in runs]

    def all_whole(self, name: str, target: str) -> bool | None:
        runs = [m for m in (self.get(name, target, r) for r in self.rounds) if m is not None]
        return all(m.all_whole() for m in runs) if runs else None


#: One value per round.
Values = list[float | None]


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def ratios(noop: list[float | None], gateway: list[float | None]) -> list[float]:
    """Gateway / no-op of each round where both were measured."""
    return [g / n for n, g in zip(noop, gateway, strict=True) if n and g is not None]


def line(
    label: str, noop: list[float | None], gateway: list[float | None], ratio: bool
) -> dict[str, str]:
    """One comparison row: medians over the rounds, and (``ratio``) the median of the rounds'
    gateway / no-op ratios, each round's after it when there are several."""
    shown = ""
    if ratio and (each := ratios(noop, gateway)):
        shown = f"{statistics.median(each):.2f}"
        if len(each) > 1:
            shown += " (" + ", ".join(f"{r:.2f}" for r in each) + ")"
    cells = [median(noop), median(gateway)]
    text = ["-" if v is None else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}" for v in cells]
    return {"measure": label, "no-op": text[0], "gateway": text[1], "gateway / no-op": shown}


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
    """The same-run comparison of the fresh-connection scenarios, and the issue's goals.

    With several rounds: medians over the rounds, and the median of the rounds' ratios.
    """
    runs = Rounds(measured)

    def both(name: str, value: Callable[[Measured], float | None]) -> tuple[Values, Values]:
        return runs.values(name, "noop", value), runs.values(name, "gateway", value)

    rows, goals = [], []
    for name, label, limit in PER_REQUEST:
        values = both(name, Measured.per_request_ms)
        rows.append(line(label, *values, ratio=True))
        if limit is not None:
            goals.append(ratio_goal(label.split(",")[0], limit, runs, name, values))

    def cost(m: Measured) -> float | None:
        return per_event_ms(runs.get("a-paced-10", m.target, m.round), m)

    costs = both("c-paced-30", cost)
    rows.append(line("CPU ms per paced event: (c - a) / (20 x 1,000)", *costs, ratio=True))
    noop_rates, gateway_rates = ([None if not c else 1000.0 / c for c in side] for side in costs)
    rows.append(line("paced events per core-second at that cost", noop_rates, gateway_rates, False))
    label = "(d) CPU ms per event from 0.95 x TTFT to the end (every connection set up)"
    rows.append(line(label, *both("d-2-per-s", Measured.per_event_ms), ratio=True))
    delays = both("d-2-per-s", lambda m: m.delay(0)), both("d-2-per-s", lambda m: m.delay(1))
    for label, values in zip(("p50", "p99"), delays, strict=True):
        rows.append(line(f"(d) added delay {label} ms, 1,000 streams x 2 events/s", *values, False))
    goals.append(delay_goal(runs))
    goals.append(hold_goal(runs))
    goals.append(goal("`bench/run.py` (16 connections) within noise of before", "-", None))
    title = "## Same run: no-op stack and gateway"
    if len(runs.rounds) > 1:
        title += f" ({len(runs.rounds)} rounds: medians)"
    return "\n\n".join([title, render(rows), "## Goals", render(goals)])


def ratio_goal(
    what: str, limit: float, runs: Rounds, name: str, values: tuple[Values, Values]
) -> dict[str, str]:
    text = f"{what}: ≤ {limit}x the no-op stack's"
    middle = median(list(ratios(*values)))
    whole = runs.all_whole(name, "noop") and runs.all_whole(name, "gateway")
    if middle is None:
        return goal(text, "-", None)
    shown = f"{middle:.2f}x" + ("" if whole else ", not all whole")
    return goal(text, shown, bool(whole) and middle <= limit)


def delay_goal(runs: Rounds) -> dict[str, str]:
    text = "added delay p99 ≤ 25 ms at 1,000 streams x 2 events/s (gateway)"
    p99 = median(runs.values("d-2-per-s", "gateway", lambda m: m.delay(1)))
    if p99 is None:
        return goal(text, "-", None)
    whole = runs.all_whole("d-2-per-s", "gateway")
    shown = f"{p99:.1f} ms" + ("" if whole else ", not all whole")
    return goal(text, shown, bool(whole) and p99 <= 25.0)


def hold_goal(runs: Rounds) -> dict[str, str]:
    text = "3,000 streams of ~4.5 s, fresh connections: all whole, wall ≤ 2 x direct + 5 s"
    direct = median(runs.values(HOLD.name, "direct", lambda m: m.wall))
    gateway = median(runs.values(HOLD.name, "gateway", lambda m: m.wall))
    if direct is None or gateway is None:
        return goal(text, "-", None)
    whole = runs.all_whole(HOLD.name, "direct") and runs.all_whole(HOLD.name, "gateway")
    limit = 2 * direct + 5.0
    shown = f"gateway {gateway:.1f} s, direct {direct:.1f} s: limit {limit:.1f} s"
    shown += "" if whole else "; not all whole"
    return goal(text, shown, bool(whole) and gateway <= limit)
