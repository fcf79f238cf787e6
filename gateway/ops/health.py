"""Liveness and readiness: answered by the gateway itself, never forwarded upstream."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Readiness:
    """Starts not ready; the app marks itself ready once started and unready when draining."""

    ready: bool = False
    reasons: dict[str, str] = field(default_factory=dict)


READINESS = web.AppKey("readiness", Readiness)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    readiness = request.app[READINESS]
    if readiness.ready and not readiness.reasons:
        return web.json_response({"status": "ready"}, headers={"Cache-Control": "no-store"})
    body = {"status": "not ready", "reasons": readiness.reasons or {"gateway": "starting or draining"}}
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
