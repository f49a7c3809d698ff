"""What a configuration reload replaces, as one frozen value swapped in one assignment.

A :class:`Generation` is the configuration and everything derived from it alone: the routing
pipeline, the price list and the keyring. The request path reads
:attr:`Generations.current` once where it starts a step and keeps that value for the step, so a
request never sees half of a reload. State that outlives a reload (the registry's backends, the
quality store, the spend book, the rate buckets) is not part of a generation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from nexus_trio.config import Config
from nexus_trio.keys import CreatedKeys, KeyRing
from nexus_trio.quality import QualityStore
from nexus_trio.registry import Registry
from nexus_trio.routing import Pipeline
from nexus_trio.spend import PriceList


@dataclass(frozen=True, slots=True)
class Generation:
    """One configuration and what is derived from it; never changed once built."""

    config: Config
    pipeline: Pipeline
    prices: PriceList
    #: Keys accepted from clients (never logged or rendered); empty = no inbound auth.
    keyring: KeyRing = field(repr=False)

    @classmethod
    def build(
        cls,
        config: Config,
        env: Mapping[str, str],
        registry: Registry,
        quality: QualityStore,
        created: CreatedKeys | None = None,
    ) -> Generation:
        """Derive a generation from ``config`` over the live ``registry`` and ``quality``; its
        keyring consults ``created``, the keys created at run time, after the configured ones.

        Raises:
            ConfigError: a key's environment variable is unset or keys collide.
        """
        return cls(
            config=config,
            pipeline=Pipeline.standard(
                registry, config.routing, config.health_check, quality=quality
            ),
            prices=PriceList(config.pricing),
            keyring=KeyRing.from_config(config, env, created),
        )


class Generations:
    """The current generation, and who is told when it is replaced."""

    __slots__ = ("_listeners", "current")

    def __init__(self, first: Generation) -> None:
        self.current = first
        self._listeners: list[Callable[[Config], None]] = []

    def on_swap(self, listener: Callable[[Config], None]) -> None:
        """Call ``listener`` with the new configuration after every :meth:`swap`."""
        self._listeners.append(listener)

    def swap(self, new: Generation) -> None:
        """Make ``new`` current (one assignment), then tell the listeners."""
        self.current = new
        for listener in self._listeners:
            listener(new.config)
