"""``nexus-trio models load|unload BACKEND MODEL``: tell a running gateway to have a backend
load or unload a model (docs/cli.md#models), through its admin routes
(docs/routing.md#model-lifecycle).

The admin key comes from ``NEXUS_ADMIN_KEY`` only (never an argument, which ``ps`` would
show), as for ``nexus-trio keys``.
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx

#: How long the command waits for the gateway (an Ollama load answers once it is done).
TIMEOUT_SECONDS = 660.0


def add_models_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = commands.add_parser("models", help="load or unload a model on a backend")
    models.add_argument("action", choices=["load", "unload"])
    models.add_argument("backend", help="the backend's name")
    models.add_argument("model", help="the model's id")
    models.add_argument("--url", default="http://127.0.0.1:8000")


def run_models(args: argparse.Namespace) -> int:
    """POST the order to ``/admin/models/<action>``; print the outcome. 0 on success, 1 when
    the gateway refused or could not be reached, 2 without ``NEXUS_ADMIN_KEY``."""
    admin_key = os.environ.get("NEXUS_ADMIN_KEY", "").strip()
    if not admin_key:
        print("nexus-trio: set NEXUS_ADMIN_KEY to an admin key of the gateway", file=sys.stderr)
        return 2
    headers = {"authorization": f"Bearer {admin_key}"}
    url = f"{args.url.rstrip('/')}/admin/models/{args.action}"
    order = {"backend": args.backend, "model": args.model}
    try:
        response = httpx.post(url, json=order, headers=headers, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        print(f"nexus-trio: cannot reach the gateway at {args.url}: {exc}", file=sys.stderr)
        return 1
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200:
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        print(
            f"nexus-trio: the gateway answered {response.status_code}: "
            f"{message or response.text[:200]}",
            file=sys.stderr,
        )
        return 1
    print(f"backend '{args.backend}': model '{args.model}' is {body.get('residency', '?')}")
    return 0
