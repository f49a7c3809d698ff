"""What a model can do (SPEC §4.3): detected, guessed from its name, overridden by config.

Precedence for each capability: the backend's ``[backends.capabilities."model"]`` override,
else what a probe detected (Ollama ``/api/show``), else a guess from the model name. Unknown
context length means no context check. ``json_mode`` is assumed available unless overridden:
every supported server type accepts ``response_format`` in some form.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

from nexus_trio.config import BackendConfig

_VISION = re.compile(r"llava|vision|-vl|pixtral|moondream")
_TOOLS = re.compile(
    r"llama-?3\.[1-9]|llama-?[4-9]|qwen-?2\.[5-9]|qwen-?[3-9]|mistral|hermes|functionary"
    r"|command-r|gpt-4|gpt-3\.5"
)
_EMBED = re.compile(r"embed")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Capabilities of one model on one backend."""

    vision: bool = False
    tools: bool = False
    json_mode: bool = True
    embeddings: bool = False
    #: Maximum context in tokens; None = unknown (no context check).
    context_length: int | None = None


@functools.lru_cache(maxsize=4096)
def guess_capabilities(model: str) -> Capabilities:
    """Capabilities from the model name alone (SPEC §4.3 heuristics); cached per name."""
    name = model.lower()
    return Capabilities(
        vision=bool(_VISION.search(name)),
        tools=bool(_TOOLS.search(name)),
        embeddings=bool(_EMBED.search(name)),
    )


def effective_capabilities(
    config: BackendConfig, model: str, detected: Capabilities | None
) -> Capabilities:
    """Merge a probe's detection (or the name guess) with the config override."""
    base = detected if detected is not None else guess_capabilities(model)
    if model in config.embedding_models and not base.embeddings:
        base = replace(base, embeddings=True)
    override = config.capabilities.get(model)
    if override is None:
        return base
    return Capabilities(
        vision=base.vision if override.vision is None else override.vision,
        tools=base.tools if override.tools is None else override.tools,
        json_mode=base.json_mode if override.json_mode is None else override.json_mode,
        embeddings=base.embeddings if override.embeddings is None else override.embeddings,
        context_length=(
            base.context_length if override.context_length is None else override.context_length
        ),
    )
