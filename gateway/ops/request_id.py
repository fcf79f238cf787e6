"""The request id: on every request, passed upstream and back as X-Request-Id, in every log line.

A client's (or a proxy's in front) well-formed id is kept, so one id follows a request through
nginx, the gateway and the app. Anything else is replaced: an id goes into headers and logs, so
it may hold no spaces, quotes or control characters, and is bounded in length. A kept id is the
client's word, not a fact: any client may reuse one it saw, so it correlates logs and must never
key anything that matters (an app's deduplication, a cache). Made ids are 32 random hex digits
(like a W3C trace id), so nobody can guess the next one.
"""

from __future__ import annotations

import contextvars
import os
import re

from aiohttp import web

HEADER = "X-Request-Id"
# Set per request at the edge when logs are JSON, read by the JSON formatter: an event logged while
# handling a request (a refresh refused, an upstream timeout) carries the request's id, and tasks
# started while handling it inherit the value. Only then: setting it costs ~5 µs per request
# (measured, one process: 104 -> 99 µs of CPU), and text lines do not show it.
current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:;=+/@-]{0,127}")


def of(request: web.BaseRequest) -> str:
    """The id this request goes by: the well-formed one it was sent with, or a new one (ops/notes.py keeps it)."""
    sent = request.headers.get(HEADER)
    return sent if sent is not None and _WELL_FORMED.fullmatch(sent) else os.urandom(16).hex()
