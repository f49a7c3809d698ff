"""Talking to a gateway in front of real servers: the official SDK's client, its JSON
documents and its ``/metrics``."""

from __future__ import annotations

from typing import Any

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.system.polling import poll


def sdk_client(url: str, api_key: str = "client-key") -> openai.OpenAI:
    """The official SDK's sync client, for worker threads (its async client leaks async
    generators under trio's strict finalizer, which this suite turns into errors). No retries:
    every failure must be the gateway's answer, not hidden by the SDK."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=30)


async def get_json(url: str, path: str) -> Any:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}{path}")
    response.raise_for_status()
    return response.json()


def backend_stats(stats: Any, name: str) -> Any:
    """One backend's object in a ``/v1/stats`` document."""
    (found,) = [backend for backend in stats["backends"] if backend["name"] == name]
    return found


def agent_quality(stats: Any, backend: str, model: str) -> Any:
    """One agent's ``quality`` object (None without data) in a ``/v1/stats`` document."""
    (agent,) = [a for a in backend_stats(stats, backend)["agents"] if a["model"] == model]
    return agent["quality"]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def metrics_text(url: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/metrics")
    response.raise_for_status()
    return response.text


async def wait_metric(url: str, name: str, value: float, **labels: str) -> None:
    """Poll ``/metrics`` until :func:`metric_value` is ``value`` (a request is counted when it
    has ended, possibly just after its client saw the end); callers bound the wait."""

    async def reached() -> bool:
        return metric_value(await metrics_text(url), name, **labels) == value

    await poll(reached)
