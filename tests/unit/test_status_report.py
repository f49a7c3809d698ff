"""What ``nexus-trio status`` prints per backend and per model (docs/cli.md#status)."""

from __future__ import annotations

from typing import Any

from nexus_trio.cli.status_report import render_status


def _agent(model: str, state: str | None) -> dict[str, Any]:
    residency = None if state is None else {"state": state, "vram_bytes": None}
    return {"model": model, "quality": None, "residency": residency}


STATS: dict[str, Any] = {
    "uptime_seconds": 12,
    "requests": {
        "in_flight": 0,
        "total": 3,
        "success": 3,
        "errors": 0,
        "client_errors": 0,
        "cancelled": 0,
    },
    "backends": [
        {
            "name": "router",
            "type": "llamacpp",
            "status": "healthy",
            "quality": None,
            "pending": 0,
            "agents": [
                _agent("qwen", "loaded"),
                _agent("gemma", "unloaded"),
                _agent("phi", "loading"),
                _agent("llama", "unknown"),
                _agent("mistral", None),
            ],
        }
    ],
}


def test_each_model_row_says_whether_it_is_loaded() -> None:
    lines = render_status("http://gw", STATS).splitlines()
    header = next(line for line in lines if line.startswith("BACKEND"))
    assert header.split()[:4] == ["BACKEND", "MODEL", "LOADED", "HEALTH"]
    cells = {line.split()[0]: line.split()[1] for line in lines if line.startswith(" ")}
    assert cells == {
        "qwen": "loaded",
        "gemma": "unloaded",
        "phi": "loading",
        "llama": "-",
        "mistral": "-",
    }
    backend = next(line for line in lines if line.startswith("router"))
    assert backend.split()[:3] == ["router", "(llamacpp)", "healthy"]
