"""``nexus-trio keys create|list|show|update|revoke|rotate`` (docs/cli.md#keys): a client of a
running gateway's admin API of keys (docs/keys.md#admin-api).

The admin key comes from ``NEXUS_ADMIN_KEY`` only (never an argument, which ``ps`` would
show). Answers are printed as a table or, with ``--json``, as the gateway sent them. A secret
is printed only by ``create`` and ``rotate``, the two answers that carry one.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import httpx

#: The settings options: (option, body field, argparse keyword arguments).
_SETTINGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--model", "models", {"action": "append", "metavar": "NAME_OR_GLOB"}),
    ("--privacy", "privacy", {"choices": ["open", "restricted"]}),
    ("--requests-per-minute", "requests_per_minute", {"type": int}),
    ("--tokens-per-minute", "tokens_per_minute", {"type": int}),
    ("--max-concurrent-requests", "max_concurrent_requests", {"type": int}),
    ("--monthly-budget-usd", "monthly_budget_usd", {"type": float}),
    ("--expires-at", "expires_at", {"metavar": "RFC3339", "help": "'never' clears it"}),
    ("--admin", "admin", {"action": argparse.BooleanOptionalAction}),
    ("--metadata", "metadata", {"action": "append", "metavar": "KEY=VALUE"}),
)
_COLUMNS = (
    ("NAME", "name"),
    ("SOURCE", "source"),
    ("STATE", "state"),
    ("ADMIN", "admin"),
    ("RPM", "requests_per_minute"),
    ("TPM", "tokens_per_minute"),
    ("CONC", "max_concurrent_requests"),
    ("BUDGET_USD", "monthly_budget_usd"),
    ("SPEND_USD", "spend_usd_this_month"),
    ("EXPIRES_AT", "expires_at"),
    ("LAST_USED_AT", "last_used_at"),
)


def add_keys_parser(commands: Any) -> None:
    """Add ``keys`` and its subcommands to the ``nexus-trio`` parser's ``commands``."""
    keys = commands.add_parser("keys", help="create, list, change and revoke keys (admin key)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default="http://127.0.0.1:8000", help="the gateway")
    common.add_argument("--json", action="store_true", help="print the gateway's JSON")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("create", "create a key; prints its secret once"),
        ("update", "change a created key's settings"),
    ):
        parser = actions.add_parser(action, parents=[common], help=text)
        parser.add_argument("name")
        for option, _, kwargs in _SETTINGS:
            parser.add_argument(option, dest=option[2:].replace("-", "_"), **kwargs)
    actions.add_parser("list", parents=[common], help="every key, of the file and created")
    for action, text in (("show", "one key"), ("revoke", "revoke a created key")):
        actions.add_parser(action, parents=[common], help=text).add_argument("name")
    rotate = actions.add_parser("rotate", parents=[common], help="a new secret, printed once")
    rotate.add_argument("name")
    rotate.add_argument("--grace-seconds", type=int, default=0, help="the old secret's grace")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for option, field, _ in _SETTINGS:
        value = getattr(args, option[2:].replace("-", "_"))
        if value is None:
            continue
        if field == "metadata":
            pairs = [item.partition("=") for item in value]
            if any(not sep for _, sep, _ in pairs):
                raise SystemExit("nexus-trio: --metadata takes KEY=VALUE")
            value = {key: text for key, _, text in pairs}
        elif field == "expires_at" and value == "never":
            value = None
        body[field] = value
    return body


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    """The method, path and body of ``args.action``."""
    name = getattr(args, "name", "")
    if args.action == "create":
        return "POST", "/admin/keys", {"name": name, **_settings(args)}
    if args.action == "list":
        return "GET", "/admin/keys", None
    if args.action == "show":
        return "GET", f"/admin/keys/{name}", None
    if args.action == "update":
        return "PATCH", f"/admin/keys/{name}", _settings(args)
    if args.action == "revoke":
        return "DELETE", f"/admin/keys/{name}", None
    return "POST", f"/admin/keys/{name}/rotate", {"grace_seconds": args.grace_seconds}


def run_keys(args: argparse.Namespace) -> int:
    """Run one ``keys`` action against ``args.url``; the exit status (1: refused or
    unreachable, 2: no ``NEXUS_ADMIN_KEY``)."""
    admin_key = os.environ.get("NEXUS_ADMIN_KEY", "").strip()
    if not admin_key:
        print("nexus-trio: set NEXUS_ADMIN_KEY to an admin key of the gateway", file=sys.stderr)
        return 2
    method, path, body = _request(args)
    try:
        response = httpx.request(
            method,
            args.url.rstrip("/") + path,
            json=body,
            headers={"authorization": f"Bearer {admin_key}"},
            timeout=10.0,
        )
    except httpx.HTTPError as exc:
        print(f"nexus-trio: cannot reach the gateway at {args.url}: {exc}", file=sys.stderr)
        return 1
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code >= 400 or not isinstance(answer, dict):
        error = (answer or {}).get("error", {}) if isinstance(answer, dict) else {}
        reason = error.get("message") or response.reason_phrase
        print(
            f"nexus-trio: {response.status_code} {error.get('code', '')}: {reason}", file=sys.stderr
        )
        return 1
    print(response.text if args.json else render(answer))
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render(answer: dict[str, Any]) -> str:
    """A list as a table, one key as ``field: value`` lines (its secret last, once)."""
    if answer.get("object") == "list":
        rows = [[title for title, _ in _COLUMNS]]
        rows += [[_cell(key.get(field)) for _, field in _COLUMNS] for key in answer["data"]]
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )
    lines = [
        f"{field}: {_cell(value)}"
        for field, value in answer.items()
        if field not in ("object", "key", "metadata", "models")
    ]
    lines.append(f"models: {', '.join(answer.get('models') or []) or '(every model)'}")
    metadata = answer.get("metadata") or {}
    lines += [f"metadata.{key}: {value}" for key, value in sorted(metadata.items())]
    if "key" in answer:
        lines += ["", f"key: {answer['key']}", "(shown once: store it now)"]
    return "\n".join(lines)
