"""``tongyeok keys add|list|revoke|set-limits``: the API keys the server accepts, with limits.

The keys live where the server keeps its state: SQLite in ``TONGYEOK_DATA_DIR`` by default, or
the Redis of ``TONGYEOK_STATE_URL``; the same settings (environment, ``--config``) find them, so a
key added here is accepted by every running replica at its next request. A new key is printed
once: only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

DAY = 86400.0


def expiry(text: str) -> float:
    """``30d`` (days from now) or an ISO date/time (UTC unless it says otherwise)."""
    if text.endswith("d") and text[:-1].isdigit():
        return time.time() + int(text[:-1]) * DAY
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 30d or an ISO date, got {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def limit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--characters", type=count, help="characters per period (quota)")
    parser.add_argument("--per-minute", type=count, help="requests per minute")
    parser.add_argument("--period", choices=("month", "day"), help="quota period (UTC)")
    parser.add_argument("--expires", type=expiry, help="30d, or an ISO date such as 2027-01-31")


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="manage API keys: add, list, revoke, set-limits")
    keys.add_argument("--config", help="settings file (TOML), as for tongyeok serve")
    keys.add_argument("--json", action="store_true", help="print JSON")
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create a key (printed once)")
    add.add_argument("name")
    limit_flags(add)
    actions.add_parser("list", help="the keys, their limits and this period's use")
    revoke = actions.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("name")
    limits = actions.add_parser("set-limits", help="change a key's limits")
    limits.add_argument("name")
    limit_flags(limits)
    limits.add_argument(
        "--clear",
        action="append",
        default=[],
        choices=("characters", "per-minute", "expires"),
        help="remove a limit (repeatable)",
    )
    keys.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from service.settings import load_settings
    from service.state.stores import open_store

    settings = load_settings(args.config)
    store = open_store(settings.state_url, settings.data_path)
    try:
        printed = asyncio.run(act(store, args))
    except Exception as exc:  # the store's typed errors carry a message for the operator
        from service.errors import ServiceError

        if isinstance(exc, ServiceError):
            raise ValueError(exc.message) from None
        raise
    print(json.dumps(printed, indent=2) if args.json else text(printed))
    return 0


async def act(store: Any, args: argparse.Namespace) -> Any:
    from service.state.keys import KeyRecord, Limits, digest_of, new_key, period_of

    try:
        if args.action == "add":
            key = new_key()
            record = KeyRecord(
                args.name,
                digest_of(key),
                args.characters,
                args.per_minute,
                args.period or "month",
                args.expires,
                time.time(),
            )
            await store.add(record)
            return {"key": key, **shown(record)}
        if args.action == "revoke":
            return shown(await store.revoke(args.name))
        if args.action == "set-limits":
            clear = frozenset(name.replace("-", "_") for name in args.clear)
            limits = Limits(args.characters, args.per_minute, args.period, args.expires, clear)
            return shown(await store.update(args.name, limits))
        rows = []
        for record in await store.all():
            characters, requests = await store.used(
                record.digest, period_of(record.period, time.time())[0]
            )
            rows.append({**shown(record), "used": characters, "requests": requests})
        return rows
    finally:
        await store.close()


def shown(record: Any) -> dict[str, Any]:
    """A record as printed: never the digest in full, dates readable."""

    def date(seconds: float | None) -> str | None:
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()

    return {
        "name": record.name,
        "characters": record.characters,
        "per_minute": record.per_minute,
        "period": record.period,
        "expires": date(record.expires),
        "revoked": date(record.revoked),
        "id": record.digest[:12],
    }


def text(printed: Any) -> str:
    if isinstance(printed, dict):
        head = f"key: {printed['key']}  (shown once: keep it now)\n" if "key" in printed else ""
        return head + "  ".join(f"{k}={v}" for k, v in printed.items() if k != "key")
    if not printed:
        return "no keys"
    return "\n".join("  ".join(f"{k}={v}" for k, v in row.items()) for row in printed)
