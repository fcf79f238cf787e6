"""What happens once a request is answered: its access log line and its metrics, from one hook.

aiohttp calls an access logger's `log()` after each response is sent, with the time it took. The
gate notes its verdict on the request, the proxy the upstream and how long it took to answer; this
reads them back. aiohttp builds one logger per connection from a class, so the settings are bound
into a class made per config (`observer_class`).
"""

from __future__ import annotations

import logging
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ..config import Config, LogFormat
from . import access_log
from .metrics import RequestMetrics
from .notes import NOTES

log = logging.getLogger("gateway")
GATEWAY = "gateway"  # the decision label of what the gateway answers itself (its endpoints, edge refusals)


@dataclass(frozen=True)
class Observing:
    write: Callable[[access_log.Entry, str], None] | None  # access_log.write_text or write_json; None: no access log
    metrics: RequestMetrics | None  # None: no metrics_listen


class RequestObserver(AbstractAccessLogger):
    observing: ClassVar[Observing]
    quiet_until: ClassVar[float] = 0.0

    @property
    def enabled(self) -> bool:
        # aiohttp skips the call (and its timing) when False
        observing = self.observing
        return observing.metrics is not None or (observing.write is not None and self.logger.isEnabledFor(logging.INFO))

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        try:
            self._observe(request, response, time)
        except Exception as exc:  # a full disk or a broken stderr must not fail the request (nor flood)
            now = clock.monotonic()
            if now >= RequestObserver.quiet_until:
                RequestObserver.quiet_until = now + 60
                log.error("access log or metrics failed (reported once a minute): %r", exc)

    def _observe(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        notes = request.get(NOTES)  # None only for what never reached the app (the parser refused it)
        verdict = None
        if notes is not None:
            time = clock.perf_counter() - notes.started
            verdict = notes.verdict
        decision = verdict.decision.value if verdict is not None else GATEWAY
        metrics = self.observing.metrics
        if metrics is not None:
            metrics.request(decision, response.status, time)
            if notes is not None and notes.upstream_seconds is not None:
                metrics.upstream(notes.upstream, notes.upstream_seconds)
        write = self.observing.write
        if write is None or not self.logger.isEnabledFor(logging.INFO):
            return
        principal = verdict.principal if verdict is not None else None
        entry = access_log.Entry(
            request.remote or "",
            request.method,
            access_log.loggable_target(request.raw_path),
            response.status,
            response.body_length,
            time,
            notes.request_id if notes is not None else "",
            verdict.rule if verdict is not None else "",
            decision,
            str(principal.claims.get("sub", "")) if principal is not None else "",
            notes.upstream if notes is not None else "",
        )
        write(entry, self.logger.name)


def observer_class(config: Config) -> type[AbstractAccessLogger] | None:
    """The access logger class aiohttp should use, or None when there is nothing to observe."""
    settings = config.logging
    write = None
    if settings.access_log:
        write = access_log.write_json if settings.format is LogFormat.JSON else access_log.write_text
    metrics = RequestMetrics() if config.metrics_listen is not None else None
    if write is None and metrics is None:
        return None
    return type("BoundRequestObserver", (RequestObserver,), {"observing": Observing(write, metrics)})
