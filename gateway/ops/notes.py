"""What the request path notes on a request as it goes, for the access log and metrics.

One object per request, made at the edge: the parts of the path write attributes on it (cheaper
than one request key each, and the hook that reads them back does one lookup). The request id
also goes back to the client from here, as the response starts.
"""

from __future__ import annotations

from aiohttp import web

from ..auth.decide import Verdict
from . import request_id


class Notes:
    __slots__ = ("started", "request_id", "verdict", "upstream", "upstream_seconds")

    def __init__(self, started: float, request_id: str) -> None:
        # When it arrived, by perf_counter: aiohttp's own duration comes from the event loop's clock,
        # which uvloop keeps in whole milliseconds, too coarse for a gateway that answers in a fraction of one.
        self.started = started
        self.request_id = request_id
        self.verdict: Verdict | None = None  # by the gate
        self.upstream = ""  # by the proxy: the upstream's URL
        self.upstream_seconds: float | None = None  # by the proxy: until the upstream's response head


NOTES = web.RequestKey("notes", Notes)


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    notes = request.get(NOTES)
    if notes is not None:
        response.headers[request_id.HEADER] = notes.request_id
