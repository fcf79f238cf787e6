"""Liveness and readiness: answered by the gateway itself, never forwarded upstream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

from aiohttp import web

Check = Callable[[], Awaitable[str | None]]  # None when fine, else a short reason


@dataclass
class Readiness:
    """Starts not ready; ready once started and every check passes; unready again when draining."""

    ready: bool = False
    checks: dict[str, Check] = field(default_factory=dict)

    async def problems(self) -> dict[str, str]:
        if not self.ready:
            return {"gateway": "starting or draining"}
        found = {name: await check() for name, check in self.checks.items()}
        return {name: reason for name, reason in found.items() if reason}


READINESS = web.AppKey("readiness", Readiness)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    problems = await request.app[READINESS].problems()
    if not problems:
        return web.json_response({"status": "ready"}, headers={"Cache-Control": "no-store"})
    body = {"status": "not ready", "reasons": problems}
    return web.json_response(body, status=503, headers={"Cache-Control": "no-store"})


def add_health_routes(app: web.Application) -> None:
    app[READINESS] = Readiness()
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)

    async def mark_ready(app: web.Application) -> None:
        app[READINESS].ready = True

    async def mark_draining(app: web.Application) -> None:
        app[READINESS].ready = False

    app.on_startup.append(mark_ready)
    app.on_shutdown.append(mark_draining)
