"""The simulated backend's model memory, the way Ollama keeps models (docs/cli.md#simulate).

With ``load_ms`` > 0 a model is loaded on first use: the request waits ``load_ms`` more (its
first token and answer come that much later), and the model stays loaded for its
``keep_alive`` — the request's, as Ollama reads it (seconds, a duration such as ``"5m"``, or a
negative value for ever), else ``keep_alive_seconds`` — from its last use. At most
``max_loaded`` models are held (0 = no limit): loading one more evicts the least recently used.
Loads happen one at a time, as Ollama's scheduler does: a request for a model being loaded
waits for that load, one for another model for its own turn.

Ollama's ``GET /api/ps`` lists what is loaded, with ``size_vram`` and ``expires_at``, and
``POST /api/generate`` without a prompt loads a model (``keep_alive`` 0 unloads it). With
``load_ms`` = 0 (the default) every model is always loaded, and ``/api/ps`` says so.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

import msgspec
import trio

from nexus_trio.simulator.options import SimulatorOptions
from nexus_trio.simulator.payloads import openai_error

#: What ``/api/ps`` says each model takes (bytes, all of it in VRAM).
MODEL_BYTES = 100_000_000
#: Seconds added to now for a model kept for ever (Ollama shows a date centuries away).
FOREVER_SECONDS = 9e9
ROUTES = frozenset({(b"GET", b"/api/ps"), (b"POST", b"/api/generate")})
_DURATION = re.compile(r"^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class _Generate(msgspec.Struct):
    model: str
    prompt: str | None = None
    keep_alive: float | str | None = None


_GENERATE = msgspec.json.Decoder(_Generate)


def keep_alive_seconds(value: float | str | None, default: float) -> float:
    """Ollama's ``keep_alive`` in seconds: ``inf`` when negative, ``default`` when absent or
    unreadable."""
    if value is None:
        return default
    if isinstance(value, str):
        found = _DURATION.match(value.strip())
        if found is None:
            return default
        value = float(found[1]) * _UNITS[found[2]]
    return math.inf if value < 0 else float(value)


class ModelMemory:
    """Which models the simulated backend holds, and for how long."""

    def __init__(self, options: SimulatorOptions) -> None:
        self.options = options
        #: Loaded models, least recently used first, with their trio expiry time.
        self.loaded: dict[str, float] = {}
        #: One load at a time, as Ollama's scheduler does.
        self._loading = trio.Lock()
        #: How many loads happened (tests and benches read it).
        self.loads = 0

    async def ensure(self, model: str, keep_alive: float | str | None) -> float:
        """Make ``model`` loaded and refresh its expiry; the seconds this request waited."""
        options = self.options
        if options.load_ms <= 0:
            return 0.0
        started = trio.current_time()
        keep = keep_alive_seconds(keep_alive, options.keep_alive_seconds)
        self._expire(started)
        while model not in self.loaded:
            async with self._loading:
                if model in self.loaded:  # loaded while this request waited its turn
                    break
                while options.max_loaded and len(self.loaded) >= options.max_loaded:
                    del self.loaded[next(iter(self.loaded))]
                await trio.sleep(options.load_ms / 1000)
                self.loaded[model] = math.inf
                self.loads += 1
        del self.loaded[model]  # most recently used now
        self.loaded[model] = trio.current_time() + keep
        return trio.current_time() - started

    async def answer(self, method: bytes, body: bytes) -> tuple[int, bytes]:
        """``GET /api/ps`` or ``POST /api/generate`` (load or unload only)."""
        if method == b"GET":
            return 200, self._ps()
        try:
            order = _GENERATE.decode(body)
        except msgspec.DecodeError as exc:
            return 400, openai_error(str(exc), "invalid_request_error", "invalid_json")
        if order.model not in self.options.models:
            message = f"model '{order.model}' not found"
            return 404, openai_error(message, "invalid_request_error", "model_not_found")
        if order.prompt:
            message = "the simulator's /api/generate only loads and unloads models"
            return 400, openai_error(message, "invalid_request_error", "invalid_value")
        if keep_alive_seconds(order.keep_alive, 1.0) == 0:
            self.loaded.pop(order.model, None)
            reason = "unload"
        else:
            await self.ensure(order.model, order.keep_alive)
            reason = "load"
        document = {"model": order.model, "response": "", "done": True, "done_reason": reason}
        return 200, msgspec.json.encode(document)

    def _expire(self, now: float) -> None:
        for model in [m for m, expires in self.loaded.items() if expires <= now]:
            del self.loaded[model]

    def _ps(self) -> bytes:
        now, wall = trio.current_time(), time.time()
        if self.options.load_ms <= 0:
            held = dict.fromkeys(self.options.models, math.inf)
        else:
            self._expire(now)
            held = self.loaded
        models = [
            {
                "name": model,
                "model": model,
                "size": MODEL_BYTES,
                "size_vram": MODEL_BYTES,
                "expires_at": _rfc3339(wall + min(expires - now, FOREVER_SECONDS)),
            }
            for model, expires in held.items()
        ]
        return msgspec.json.encode({"models": models})


def _rfc3339(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat().replace("+00:00", "Z")
