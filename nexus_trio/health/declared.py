"""What servers declare about their models, decoded from the documents a probe fetches.

Pure and synchronous: view Structs holding only the fields used, decoders built once, and the
conversion of each declaration into :class:`~nexus_trio.registry.Capabilities` — known where
the server says so, unknown everywhere else:

- Ollama ``/api/show``: the ``capabilities`` array (0.6+: what it leaves out is known missing),
  a ``bert`` family (embeds), ``<arch>.context_length``;
- llama.cpp ``/v1/models``: ``meta.n_ctx`` (the context of one slot) and
  ``architecture.input_modalities`` (``image`` or not: vision); ``/props`` of a one-model server:
  ``modalities.vision`` and ``chat_template_caps.supports_tools`` — only a ``true`` counts
  there, since llama.cpp answers tool requests with a generic format when its template has
  none. It declares nothing about embeddings (``--embeddings`` is invisible), so they stay
  unknown;
- vLLM ``/v1/models``: ``max_model_len``.
"""

from __future__ import annotations

import msgspec

from nexus_trio.registry import Capabilities

__all__ = ["MODEL_LIST", "PROPS", "SHOW", "TAGS"]


class Named(msgspec.Struct):
    name: str


class Tags(msgspec.Struct):
    models: list[Named]


class Meta(msgspec.Struct):
    n_ctx: int | None = None


class Architecture(msgspec.Struct):
    input_modalities: list[str] | None = None


class Identified(msgspec.Struct):
    id: str
    #: llama.cpp
    meta: Meta | None = None
    architecture: Architecture | None = None
    #: vLLM
    max_model_len: int | None = None

    def declared(self) -> Capabilities | None:
        """What this entry says about the model; None when it says nothing."""
        modalities = self.architecture.input_modalities if self.architecture else None
        vision = None if modalities is None else "image" in modalities
        context = self.max_model_len or (self.meta.n_ctx if self.meta else None)
        if vision is None and not context:
            return None
        return Capabilities(vision=vision, context_length=context or None)


class ModelList(msgspec.Struct):
    data: list[Identified]


class Modalities(msgspec.Struct):
    vision: bool | None = None


class TemplateCaps(msgspec.Struct):
    supports_tools: bool | None = None


class Settings(msgspec.Struct):
    n_ctx: int | None = None


class Props(msgspec.Struct):
    """llama.cpp ``GET /props``: the fields that say what the loaded model can do."""

    modalities: Modalities | None = None
    chat_template_caps: TemplateCaps | None = None
    default_generation_settings: Settings | None = None

    def declared(self) -> Capabilities:
        settings = self.default_generation_settings
        template = self.chat_template_caps
        return Capabilities(
            vision=self.modalities.vision if self.modalities else None,
            tools=True if template is not None and template.supports_tools else None,
            context_length=(settings.n_ctx or None) if settings else None,
        )


class Details(msgspec.Struct):
    families: list[str] | None = None


class Show(msgspec.Struct):
    """Ollama ``POST /api/show``."""

    capabilities: list[str] | None = None
    model_info: dict[str, msgspec.Raw] | None = None
    details: Details | None = None

    def declared(self) -> Capabilities:
        families = self.details.families if self.details is not None else None
        bert = any("bert" in family for family in families or ())
        vision: bool | None = None
        tools: bool | None = None
        embeddings: bool | None = True if bert else None
        if self.capabilities is not None:  # Ollama 0.6+ declares them; older ones say nothing
            vision = "vision" in self.capabilities
            tools = "tools" in self.capabilities
            embeddings = "embedding" in self.capabilities or bert
        return Capabilities(
            vision=vision,
            tools=tools,
            embeddings=embeddings,
            context_length=_context_length(self.model_info or {}),
        )


def _context_length(model_info: dict[str, msgspec.Raw]) -> int | None:
    """The first positive integer ``<architecture>.context_length`` in ``model_info``."""
    for key, raw in model_info.items():
        if key.endswith(".context_length"):
            try:
                value = _INT.decode(raw)
            except (msgspec.DecodeError, RecursionError):
                continue
            if value > 0:
                return value
    return None


_INT = msgspec.json.Decoder(int)
TAGS = msgspec.json.Decoder(Tags)
MODEL_LIST = msgspec.json.Decoder(ModelList)
SHOW = msgspec.json.Decoder(Show)
PROPS = msgspec.json.Decoder(Props)
