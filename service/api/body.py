"""A request body as a dict, JSON or form alike: what the drop-in routes read their fields from
and what the key check looks in for a key sent in the body.

The bytes were counted and bounded as they arrived (``observe.py``); this only parses them.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from service.errors import InvalidRequest


async def read_body(request: Request) -> dict[str, Any]:
    """JSON object or form fields (repeated form fields become lists)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        if not await request.body():
            return {}
        try:
            data = await request.json()
        except (ValueError, RecursionError):  # UnicodeDecodeError and deep nesting included
            raise InvalidRequest(
                "body is not valid JSON (UTF-8, nested at most ~900 deep)"
            ) from None
        if not isinstance(data, dict):
            raise InvalidRequest("body must be a JSON object")
        return data
    form = await request.form()
    return {k: (vs if len(vs := form.getlist(k)) > 1 else vs[0]) for k in form}
