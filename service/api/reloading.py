"""Keeping the served models in line with the repository while the server runs: a poll every
``repository_poll_seconds``, and on demand (SIGHUP, ``POST /v1/admin/reload``). Loading happens in
a worker thread; the event loop keeps answering, and the routing table is swapped whole."""

from __future__ import annotations

import asyncio
import json
import logging

from service.scheduling.repository import ModelRepository, Reload

log = logging.getLogger("tongyeok.reload")


async def reload_now(repository: ModelRepository, cause: str) -> Reload:
    """One reload off the event loop, logged when it changed anything."""
    report = await asyncio.to_thread(repository.reload)
    if report.changed:
        log.info(json.dumps({"event": "reload", "cause": cause, **report.to_dict()}))
    return report


async def poll(repository: ModelRepository, seconds: float) -> None:
    """Reload every ``seconds`` until cancelled; an error is logged, never the end of polling."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await reload_now(repository, "poll")
        except Exception:
            log.exception("reloading the model repository failed")
