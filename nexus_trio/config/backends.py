"""``[[backends]]``: one backend's configuration and what its type implies
(docs/routing.md#backend-types). Part of the configuration schema; import it from
``nexus_trio.config``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import msgspec.structs

from nexus_trio.config.decoding import InvalidKey
from nexus_trio.config.urls import check_base_url
from nexus_trio.config.values import AtLeastOne, NonEmptyStr, NonNegativeInt, Seconds, Tier

BackendType = Literal["ollama", "vllm", "llamacpp", "lmstudio", "openai", "anthropic", "generic"]
PRIVACY_ZONES = ("restricted", "open")
CLOUD_TYPES = frozenset({"openai", "anthropic"})
#: The base URL of an ``anthropic`` backend whose ``url`` is omitted.
ANTHROPIC_URL = "https://api.anthropic.com"
#: Keys that only mean something on an ``anthropic`` backend.
_ANTHROPIC_KEYS = ("anthropic_version", "default_max_tokens")
#: The body fields of a client's request that reach further than a model on the operator's
#: account, or cost more, when it is relayed untranslated: left out (or refused) unless the
#: backend's ``native_fields`` names them (docs/messages-api.md#native-reach,
#: docs/responses-api.md#native-reach).
MESSAGES_NATIVE_FIELDS = ("mcp_servers", "container", "service_tier", "speed", "inference_geo")
RESPONSES_NATIVE_FIELDS = ("service_tier", "background", "conversation", "prompt")


class ModelCapabilities(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[backends.capabilities."model"]`` (docs/routing.md#capabilities); None = not declared."""

    vision: bool | None = None
    tools: bool | None = None
    json_mode: bool | None = None
    embeddings: bool | None = None
    context_length: AtLeastOne | None = None


class BackendConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[backends]]`` entry (docs/routing.md#backend-types); ``name`` is its identity.

    ``url`` is stored without trailing slashes and ``zone`` in lower case.
    """

    name: NonEmptyStr
    #: Required, except for ``anthropic`` (default ``https://api.anthropic.com``).
    url: str = ""
    type: BackendType
    #: Lower = preferred (docs/routing.md#scheduler).
    priority: int = 50
    #: "restricted" or "open", any case; None = the default of the type (see privacy_zone).
    zone: str | None = None
    tier: Tier = 1
    api_key_env: NonEmptyStr | None = None
    forward_authorization: bool = False
    #: The backend serves OpenAI's Responses API itself: ``/v1/responses`` requests routed to it
    #: pass untranslated (docs/responses-api.md).
    responses_api: bool = False
    #: 0 = unlimited.
    max_concurrent_requests: NonNegativeInt = 0
    models: list[NonEmptyStr] = msgspec.field(default_factory=list)
    embedding_models: list[NonEmptyStr] = msgspec.field(default_factory=list)
    capabilities: dict[NonEmptyStr, ModelCapabilities] = msgspec.field(default_factory=dict)
    tls_ca_file: NonEmptyStr | None = None
    #: Replaces ``server.attempt_timeout_seconds`` for this backend; None = the server's.
    timeout_seconds: Seconds | None = None
    #: ``anthropic`` only: the ``anthropic-version`` header (None = 2023-06-01).
    anthropic_version: NonEmptyStr | None = None
    #: ``anthropic`` only: ``max_tokens`` when the client sends none (None = 4096).
    default_max_tokens: AtLeastOne | None = None
    #: ``anthropic`` only: the ``anthropic-beta`` features a client's Messages request may turn
    #: on when it is relayed untranslated; any other flag is dropped (docs/messages-api.md).
    anthropic_beta: list[NonEmptyStr] = msgspec.field(default_factory=list)
    #: ``anthropic`` and ``responses_api`` backends: the server-side (built-in) tool types a
    #: client's request relayed untranslated may use; every other is left out of it.
    native_tools: list[NonEmptyStr] = msgspec.field(default_factory=list)
    #: Likewise the body fields of ``MESSAGES_NATIVE_FIELDS`` / ``RESPONSES_NATIVE_FIELDS``.
    native_fields: list[NonEmptyStr] = msgspec.field(default_factory=list)
    #: Chat requests get their system messages merged into one, first: for chat templates
    #: that refuse a later one (docs/proxying.md#request-body). Not on ``anthropic``.
    merge_system_messages: bool = False
    #: ``llamacpp`` and ``ollama`` only: models loaded at start-up and loaded again after an
    #: eviction (docs/routing.md#model-lifecycle).
    warm_models: Annotated[list[NonEmptyStr], msgspec.Meta(max_length=64)] = msgspec.field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        url = self.url
        if not url:
            if self.type != "anthropic":
                raise InvalidKey("url", f"url is required for type {self.type!r}")
            url = ANTHROPIC_URL
        try:
            msgspec.structs.force_setattr(self, "url", check_base_url(url))
        except ValueError as exc:
            raise InvalidKey("url", f"url {exc}") from exc
        self._check_type_keys()
        self._check_native_keys()
        if self.zone is not None:
            zone = self.zone.lower()
            if zone not in PRIVACY_ZONES:
                raise InvalidKey("zone", f"zone must be 'restricted' or 'open', got {self.zone!r}")
            msgspec.structs.force_setattr(self, "zone", zone)
        if self.warm_models and self.type not in ("llamacpp", "ollama"):
            raise InvalidKey(
                "warm_models",
                f"warm_models is only valid on types 'llamacpp' and 'ollama', not {self.type!r}",
            )
        if self.forward_authorization and self.api_key_env is not None:
            raise InvalidKey(
                "forward_authorization",
                "forward_authorization = true cannot be combined with api_key_env on the same "
                "backend: choose the client's key or the backend key",
            )

    def _check_type_keys(self) -> None:
        """Anthropic's keys only on ``anthropic``, which needs a key variable."""
        if self.type != "anthropic":
            for key in _ANTHROPIC_KEYS:
                if getattr(self, key) is not None:
                    raise InvalidKey(key, f"{key} is only valid on type 'anthropic'")
            if self.anthropic_beta:
                raise InvalidKey(
                    "anthropic_beta", "anthropic_beta is only valid on type 'anthropic'"
                )
            return
        if self.responses_api:
            raise InvalidKey(
                "responses_api", "responses_api is not valid on type 'anthropic' (Messages API)"
            )
        if self.merge_system_messages:
            raise InvalidKey(
                "merge_system_messages",
                "merge_system_messages is not valid on type 'anthropic' (its system prompt is "
                "one already)",
            )
        if self.api_key_env is None:
            raise InvalidKey(
                "api_key_env", "type 'anthropic' needs api_key_env (the variable holding its key)"
            )

    def _check_native_keys(self) -> None:
        """``native_tools`` and ``native_fields`` only where requests pass untranslated, and
        only fields the gateway gates for that API."""
        gated: tuple[str, ...]
        if self.type == "anthropic":
            gated = MESSAGES_NATIVE_FIELDS
        elif self.responses_api:
            gated = RESPONSES_NATIVE_FIELDS
        else:
            for key in ("native_tools", "native_fields"):
                if getattr(self, key):
                    raise InvalidKey(
                        key, f"{key} is only valid on type 'anthropic' or with responses_api"
                    )
            return
        for field in self.native_fields:
            if field not in gated:
                raise InvalidKey(
                    "native_fields",
                    f"native_fields: {field!r} is not one of {', '.join(gated)}",
                )

    def privacy_zone(self) -> str:
        """The effective zone: ``zone``, else ``open`` for cloud types, else ``restricted``."""
        if self.zone is not None:
            return self.zone
        return "open" if self.type in CLOUD_TYPES else "restricted"

    def location(self) -> str:
        """``cloud`` for the ``openai`` and ``anthropic`` types, ``local`` for the others."""
        return "cloud" if self.type in CLOUD_TYPES else "local"
