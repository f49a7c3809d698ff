"""The budgets on the request path (docs/spend.md#budgets, docs/spend.md#reservations,
docs/keys.md#keys): what they leave of cloud backends before routing, and the admission of each
attempt to a priced agent.

Theory of operation. Before routing, :meth:`BudgetGate.cloud_use` reads the global budget and
the key's own, each judged on settled spend plus the reservations in flight, and turns them
into a :class:`~nexus_trio.routing.CloudUse` (or the 429 of ``hard_limit_action = "reject"``).
Right before an attempt is sent to a priced agent, :meth:`BudgetGate.admit` checks the same
budgets again and reserves the attempt's worst case, in one synchronous call: nothing can run
between the check and the reservation, so a gateway admits a request only while settled plus
reserved is under every limit, and overshoots by at most the one request that crosses it.

The reservation is kept in ``RequestContext.reservation``, one at a time. The request path
releases it when its attempt fails, before any retry reserves again
(:meth:`BudgetGate.release`). Every other end — an answer, the client gone, the deadline, the
drain, an error — reaches the request's accounting, which runs once per proxy request in the
ASGI layer's ``finally`` and releases it in the same synchronous step that charges the real
cost (:func:`nexus_trio.api.accounting.record_request`).
"""

from __future__ import annotations

import math

from nexus_trio import errors
from nexus_trio.api.bodies import RequestView
from nexus_trio.asgi.context import RequestContext
from nexus_trio.dialects import dialect_for
from nexus_trio.gateway.generation import Generations
from nexus_trio.keys import DEFAULT_KEY, ClientKey
from nexus_trio.routing import Agent, CloudUse
from nexus_trio.spend import BudgetLevel, BudgetState, SpendBook
from nexus_trio.spend.budget import stricter
from nexus_trio.spend.reservations import worst_case_usd

#: ``Retry-After`` of a refusal due only to reservations: they end with their requests.
_RESERVED_RETRY_SECONDS = 1


class BudgetGate:
    """The global and per-key budgets over the month's spend, for proxy requests."""

    def __init__(self, generations: Generations, spend: SpendBook) -> None:
        self._generations = generations
        self._spend = spend

    def cloud_use(self, key: ClientKey | None) -> CloudUse:
        """What the global budget and the key's own leave of cloud backends.

        Raises:
            BudgetExceeded: a budget is spent or reserved, and its action is ``reject``.
        """
        if self._spend.level(*self._key_limit(key)) is BudgetLevel.OK:
            return CloudUse.ALLOWED
        cloud_use = CloudUse.ALLOWED
        for what, state in self._states(key):
            if state.rejects:
                raise self._exceeded(what, state)
            cloud_use = stricter(cloud_use, state.cloud_use)
        return cloud_use

    def admit(self, ctx: RequestContext, view: RequestView, agent: Agent) -> bool:
        """Admit an attempt of ``ctx`` to ``agent``, reserving its worst case when it is priced.

        Synchronous: the check and the reservation (``ctx.reservation``) happen with no
        checkpoint between them. The output reserved is the view's allowance, each choice at
        most the model's known context length, in all at most ``[budget]
        max_reserved_output_tokens``. An unpriced agent is always admitted and reserves
        nothing. A reservation of an earlier attempt still held is released first: a request
        never holds two.

        Returns:
            False when a budget is spent or reserved, its action is ``local_only`` and
            ``agent`` is a cloud backend: nothing is reserved; route again without cloud.

        Raises:
            BudgetExceeded: a budget is spent or reserved and its action is ``reject``.
        """
        self.release(ctx)
        generation = self._generations.current
        backend = agent.backend
        price = generation.prices.lookup(backend.name, agent.model)
        if price is None:
            return True
        if self._spend.level(*self._key_limit(ctx.key)) is BudgetLevel.HARD:
            for what, state in self._states(ctx.key):
                if state.level is BudgetLevel.HARD:
                    if state.action == "reject":
                        raise self._exceeded(what, state)
                    if backend.location == "cloud":
                        return False
        budget = generation.config.budget
        default = dialect_for(backend.config.type).output_allowance(
            backend, budget.default_reserved_output_tokens
        )
        context_length = backend.capabilities(agent.model).context_length
        output = view.output_allowance(default, context_length)
        output = min(output, budget.max_reserved_output_tokens)
        usd = worst_case_usd(price, ctx.estimated_prompt_tokens, output)
        ctx.reservation = self._spend.reserve(ctx.key_name, usd)
        return True

    def release(self, ctx: RequestContext) -> None:
        """Release the reservation of ``ctx``'s attempt, which ended without an answer; a
        no-op without one."""
        reservation = ctx.reservation
        if reservation is not None:
            ctx.reservation = None
            self._spend.release(reservation)

    @staticmethod
    def _key_limit(key: ClientKey | None) -> tuple[str, float]:
        """The key's name and its own budget (0 = none)."""
        if key is None or key.config is None:
            return DEFAULT_KEY, 0.0
        return key.name, key.config.monthly_budget_usd

    def _states(self, key: ClientKey | None) -> list[tuple[str, BudgetState]]:
        """The budgets that apply, each with how a refusal names it: with its limit, except the
        global budget's to a tenant key (not admin), which ``/v1/stats`` withholds from it too
        (docs/keys.md#roles)."""
        spend = self._spend
        states: list[tuple[str, BudgetState]] = []
        if self._generations.current.config.budget.monthly_limit_usd > 0:
            state = spend.budget()
            tenant = key is not None and not key.admin
            states.append((_named("The monthly budget", state, amounts=not tenant), state))
        if key is not None and key.config is not None and key.config.monthly_budget_usd > 0:
            state = spend.key_budget(key.name, key.config.monthly_budget_usd)
            states.append((_named(f"The monthly budget of key '{key.name}'", state), state))
        return states

    def _exceeded(self, what: str, state: BudgetState) -> errors.BudgetExceeded:
        """429 ``budget_exceeded`` naming the budget as ``what``: until the month ends when it
        is spent; a moment when only the requests in flight hold it (their reservations end
        with them)."""
        if state.spent:
            seconds = max(1, math.ceil(self._spend.seconds_to_month_end()))
            return errors.BudgetExceeded(
                f"{what} is spent.",
                headers={"x-should-retry": "false", "Retry-After": str(seconds)},
            )
        return errors.BudgetExceeded(
            f"{what} is reserved by requests in flight; it may have room again when they end.",
            headers={"Retry-After": str(_RESERVED_RETRY_SECONDS)},
        )


def _named(what: str, state: BudgetState, *, amounts: bool = True) -> str:
    """A budget as a refusal names it: its limit and month, or its month alone."""
    if amounts:
        return f"{what} ({state.limit_usd:g} USD for {state.month})"
    return f"{what} for {state.month}"
