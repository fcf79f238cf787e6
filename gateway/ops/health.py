"""Liveness and readiness: answered by the gateway itself, never forwarded upstream.

`/healthz` says the process answers. `/readyz` says a load balancer should send it traffic: not
before the app has started, not while a dependency it needs is missing (the provider's keys never
loaded, Redis unreachable), and not once a drain has begun (SIGTERM): the drain keeps serving
requests for `drain_delay` while readiness is 503, so the load balancer stops routing here before
the listener closes and no client meets a refused connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from aiohttp import web

Check = Callable[[], Awaitable[str | None]]  # None when fine, else a short reason
# Kubernetes' default probe timeout is 1 s: a dependency slower than that to answer is "not ready",
# and the probe gets that reason instead of a timeout of its own.
CHECK_TIMEOUT = 1.0


@dataclass
class Readiness:
    """Not ready until started and every check passes; not ready again, for good, once draining."""

    started: bool = False
    draining: bool = False
    checks: dict[str, Check] = field(default_factory=dict)
    check_timeout: float = CHECK_TIMEOUT

    async def problems(self) -> dict[str, str]:
        if self.draining:
            return {"gateway": "draining"}
        if not self.started:
            return {"gateway": "starting"}
        names = list(self.checks)
        found = await asyncio.gather(*(self._run(self.checks[name]) for name in names))
        return {name: reason for name, reason in zip(names, found) if reason}

    async def _run(self, check: Check) -> str | None:
        try:
            return await asyncio.wait_for(check(), self.check_timeout)
        except asyncio.TimeoutError:
            return f"no answer within {self.check_timeout:g}s"


READINESS = web.AppKey("readiness", Readiness)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    problems = await request.app[READINESS].problems()
    if not problems:
        return web.json_response({"status": "ready"}, headers={"Cache-Control": "no-store"})
    body = {"status": "not ready", "reasons": problems}
    return web.json_response(body, status=503, headers={"Cache-Control": "no-store"})


def begin_draining(app: web.Application) -> None:
    """From now on /readyz answers 503 and responses close their connection (no-op for other apps)."""
    readiness = app.get(READINESS)
    if readiness is not None:
        readiness.draining = True


def add_health_routes(app: web.Application) -> None:
    readiness = app[READINESS] = Readiness()
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)

    async def mark_started(app: web.Application) -> None:
        readiness.started = True

    async def mark_draining(app: web.Application) -> None:
        readiness.draining = True  # when the runner stops without a drain first (tests, the demo)

    async def close_when_draining(request: web.Request, response: web.StreamResponse) -> None:
        # A keep-alive connection reused just as the listener closes is the classic lost request of a
        # shutdown: during the drain each response ends its connection, so the client's next request
        # opens a new one, to whichever instance the load balancer now prefers.
        if readiness.draining:
            response.force_close()  # aiohttp has written its Connection header already: say it too
            response.headers["Connection"] = "close"

    app.on_startup.append(mark_started)
    app.on_shutdown.append(mark_draining)
    app.on_response_prepare.append(close_when_draining)
