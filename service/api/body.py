"""A request body as a dict, JSON or form alike: what the drop-in routes read their fields from
and what the key check looks in for a key sent in the body.

The bytes were counted and bounded as they arrived (``observe.py``); this only parses them.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request

from service.errors import BadRequest, InvalidRequest


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
    try:
        form = await request.form()
    except (HTTPException, RuntimeError) as exc:
        # Starlette reports a malformed multipart body as an HTTPException the first time and,
        # its stream then consumed, as a RuntimeError to the next reader (the key check reads
        # the body before the route does): both are this one 400.
        detail = exc.detail if isinstance(exc, HTTPException) else "its stream was cut"
        raise BadRequest(f"body is not a form that can be parsed: {detail}") from None
    return {k: (vs if len(vs := form.getlist(k)) > 1 else vs[0]) for k in form}
