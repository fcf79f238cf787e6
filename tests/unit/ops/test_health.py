"""Readiness states: starting, ready, a dependency's reason, a check that hangs, draining."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from pytest_aiohttp.plugin import AiohttpClient

from gateway.ops.health import READINESS, Readiness, add_health_routes, begin_draining


async def fine() -> str | None:
    return None


async def redis_down() -> str | None:
    return "redis unreachable: ConnectionError"


async def hangs() -> str | None:
    await asyncio.sleep(10)
    return None


async def test_not_ready_until_started() -> None:
    readiness = Readiness(checks={"provider": fine})
    assert await readiness.problems() == {"gateway": "starting"}
    readiness.started = True
    assert await readiness.problems() == {}


async def test_a_failing_check_gives_its_reason_and_only_its_own() -> None:
    readiness = Readiness(started=True, checks={"provider": fine, "redis": redis_down})
    assert await readiness.problems() == {"redis": "redis unreachable: ConnectionError"}


async def test_a_check_that_hangs_is_a_reason_within_the_timeout() -> None:
    readiness = Readiness(started=True, checks={"redis": hangs, "provider": fine}, check_timeout=0.05)
    began = time.monotonic()
    assert await readiness.problems() == {"redis": "no answer within 0.05s"}
    assert time.monotonic() - began < 1


async def test_draining_is_not_ready_whatever_the_checks_say() -> None:
    readiness = Readiness(started=True, checks={"provider": fine})
    readiness.draining = True
    assert await readiness.problems() == {"gateway": "draining"}
    readiness.checks["redis"] = redis_down
    assert await readiness.problems() == {"gateway": "draining"}


def health_app() -> web.Application:
    app = web.Application()
    add_health_routes(app)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="page")

    app.router.add_get("/page", page)
    return app


async def test_readyz_over_http_and_connections_closed_while_draining(aiohttp_client: AiohttpClient) -> None:
    app = health_app()
    client = await aiohttp_client(app)
    response = await client.get("/readyz")
    assert response.status == 200 and await response.json() == {"status": "ready"}
    assert (await client.get("/page")).headers.get("Connection") != "close"

    begin_draining(app)
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {"status": "not ready", "reasons": {"gateway": "draining"}}
    page = await client.get("/page")
    assert page.status == 200 and await page.text() == "page", "requests are still served"
    assert page.headers["Connection"] == "close"
    assert (await client.get("/healthz")).status == 200, "alive while draining"


async def test_stopping_without_a_drain_marks_draining_too(aiohttp_client: AiohttpClient) -> None:
    app = health_app()
    client = await aiohttp_client(app)
    await client.close()  # on_shutdown
    assert app[READINESS].draining


def test_begin_draining_leaves_other_apps_alone() -> None:
    begin_draining(web.Application())  # the demo's upstream and local Cognito have no readiness
