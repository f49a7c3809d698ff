"""What a model can do: known yes, known no, or unknown (docs/routing.md#capabilities).

Each boolean capability (``vision``, ``tools``, ``json_mode``, ``embeddings``) is ``True``,
``False`` or ``None`` (unknown). For each one, the strongest source that knows wins:

1. the backend's configuration: ``[backends.capabilities."model"]`` and, for embeddings, the
   ``embedding_models`` list;
2. what the server itself declared to a health probe (Ollama ``/api/show`` capabilities,
   llama.cpp ``/props`` and ``/v1/models``);
3. a guess from the model name, which may only say **yes**: a name off every list says
   nothing, so an unknown model is never refused for a capability it may well have.

Routing refuses an agent only for a capability known to be missing; among the others, agents
whose required capabilities are all known are preferred (see the scheduler). Unknown context
length means no context check.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, fields

from nexus_trio.config import BackendConfig

_VISION = re.compile(r"llava|vision|-vl|pixtral|moondream")
_TOOLS = re.compile(
    r"llama-?3\.[1-9]|llama-?[4-9]|qwen-?2\.[5-9]|qwen-?[3-9]|mistral|hermes|functionary"
    r"|command-r|gpt-4|gpt-3\.5"
)
_EMBED = re.compile(r"embed")

#: The boolean capabilities, in the order they are reported.
FLAGS = ("vision", "tools", "json_mode", "embeddings")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Capabilities of one model on one backend; ``None`` = unknown."""

    vision: bool | None = None
    tools: bool | None = None
    json_mode: bool | None = None
    embeddings: bool | None = None
    #: Maximum context in tokens; None = unknown (no context check).
    context_length: int | None = None

    def over(self, weaker: Capabilities) -> Capabilities:
        """These capabilities, with what they leave unknown taken from ``weaker``."""
        return Capabilities(
            *(
                mine if (mine := getattr(self, f.name)) is not None else getattr(weaker, f.name)
                for f in fields(self)
            )
        )


#: What is known of every model of a backend type, whatever its name. The gateway translates
#: images and tools for Anthropic; it has no embeddings, and no JSON mode the gateway sends.
TYPE_CAPABILITIES = {
    "anthropic": Capabilities(vision=True, tools=True, json_mode=False, embeddings=False),
}


@functools.lru_cache(maxsize=4096)
def guess_capabilities(model: str) -> Capabilities:
    """What the model name suggests: ``True`` on a match, else unknown; cached per name."""
    name = model.lower()
    return Capabilities(
        vision=True if _VISION.search(name) else None,
        tools=True if _TOOLS.search(name) else None,
        embeddings=True if _EMBED.search(name) else None,
    )


def configured_capabilities(config: BackendConfig, model: str) -> Capabilities:
    """What the operator declared for ``model`` on this backend (unknown where silent)."""
    override = config.capabilities.get(model)
    embeddings = True if model in config.embedding_models else None
    if override is None:
        return Capabilities(embeddings=embeddings)
    return Capabilities(
        vision=override.vision,
        tools=override.tools,
        json_mode=override.json_mode,
        embeddings=override.embeddings if override.embeddings is not None else embeddings,
        context_length=override.context_length,
    )


def effective_capabilities(
    config: BackendConfig, model: str, declared: Capabilities | None
) -> Capabilities:
    """Configuration over what the server declared over the name's guess."""
    merged = configured_capabilities(config, model)
    if declared is not None:
        merged = merged.over(declared)
    typed = TYPE_CAPABILITIES.get(config.type)
    if typed is not None:
        merged = merged.over(typed)
    return merged.over(guess_capabilities(model))
