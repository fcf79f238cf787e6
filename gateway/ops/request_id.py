"""The request id: on every request, passed upstream and back as X-Request-Id, in every log line.

A client's (or a proxy's in front) well-formed id is kept, so one id follows a request through
nginx, the gateway and the app. Anything else is replaced: an id goes into headers and logs, so
it may hold no spaces, quotes or control characters, and is bounded in length.
"""

from __future__ import annotations

import contextvars
import itertools
import re
import secrets

from aiohttp import web

HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)
# Set per request at the edge, read by the JSON log formatter: an event logged while handling a
# request (a refresh refused, an upstream timeout) carries the request's id. Tasks started while
# handling it inherit the value.
current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:;=+/@-]{0,127}")
# 32 hex digits like a W3C trace id: a random half per process, then a counter (cheaper than a
# uuid4 per request, and unique across workers and instances with overwhelming probability).
_PREFIX = secrets.token_hex(8)
_counter = itertools.count(1)


def assign(request: web.BaseRequest) -> str:
    sent = request.headers.get(HEADER)
    request_id = sent if sent is not None and _WELL_FORMED.fullmatch(sent) else f"{_PREFIX}{next(_counter):016x}"
    request[REQUEST_ID] = request_id
    current.set(request_id)
    return request_id


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[HEADER] = request_id
