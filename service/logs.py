"""The server's log lines: each one JSON object on stderr, uvicorn's and Python's warnings included.

Every line has ``timestamp`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``; an exception's
traceback is its ``exception`` field, not more lines. A message that is itself a JSON object (the
events: ``{"event": "settings", ...}``, the request line) is spread into the line, its ``event``
as the message. A line written while a request is served carries the ``model`` the request was
routed to (``note``, called where requests are routed), the request's own line included.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

BASE = ("timestamp", "level", "logger", "message")

# The fields noted for the request being served: a dict set by the request's middleware, shared
# (not copied) by the tasks and threads that serve it, so a field noted there reaches its line.
REQUEST_FIELDS: ContextVar[dict[str, Any] | None] = ContextVar("tongyeok_request", default=None)


def note(**fields: Any) -> None:
    """Add ``fields`` (the model) to the log lines of the request being served; outside a
    request, nothing."""
    current = REQUEST_FIELDS.get()
    if current is not None:
        current.update(fields)


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields = event_fields(message)
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": message if fields is None else str(fields.get("event", "")),
        }
        model = getattr(record, "model", None) or (REQUEST_FIELDS.get() or {}).get("model")
        if model is not None:
            line["model"] = model
        for key, value in (fields or {}).items():
            line[f"{key}_" if key in BASE else key] = value  # never hides a base field
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def event_fields(message: str) -> dict[str, Any] | None:
    """The fields of a message that is a JSON object, else None."""
    if not message.startswith("{"):
        return None
    try:
        fields = json.loads(message)
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """JSON lines on ``stream`` (stderr) from every logger: the root logger's one handler
    (``force``: the server process owns logging, whatever a library set up before it), which
    uvicorn's loggers reach too when uvicorn is given no logging config of its own."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)  # warnings.warn too, as lines of the "py.warnings" logger
