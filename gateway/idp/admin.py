"""`/_admin/*`: test hooks a real Cognito lacks. Only routed when `admin_api: true`.

These endpoints are unauthenticated by design (a local test tool); never enable
them on an address other people can reach.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from aiohttp import web

from .state import HOOKS, KEYS, STORE, Fault


async def outbox(request: web.Request) -> web.Response:
    """Messages (confirmation and reset codes) newest last; `?username=` filters."""
    username = request.query.get("username", "").lower()
    messages = [asdict(m) for m in request.app[STORE].outbox if not username or m.username.lower() == username]
    return web.json_response({"messages": messages})


async def stats(request: web.Request) -> web.Response:
    hooks = request.app[HOOKS]
    return web.json_response({"token_requests": dict(hooks.token_calls), "userinfo_requests": hooks.userinfo_calls})


async def refresh_stats(request: web.Request) -> web.Response:
    """Successful refresh_token grants (tokens issued) by username and by client id."""
    hooks = request.app[HOOKS]
    return web.json_response({
        "total": sum(hooks.refresh_by_user.values()),
        "by_user": dict(hooks.refresh_by_user),
        "by_client": dict(hooks.refresh_by_client),
    })  # fmt: skip


async def identity_stats(request: web.Request) -> web.Response:
    """Cognito Identity calls (identity_pools) by operation, well-formed or not: `GetId`, `GetCredentialsForIdentity`."""
    return web.json_response({"requests": dict(request.app[HOOKS].identity_calls)})


async def reset_stats(request: web.Request) -> web.Response:
    hooks = request.app[HOOKS]
    hooks.token_calls.clear()
    hooks.userinfo_calls = 0
    hooks.refresh_by_user.clear()
    hooks.refresh_by_client.clear()
    hooks.identity_calls.clear()
    return web.json_response({"token_requests": {}, "userinfo_requests": 0})


async def rotate_keys(request: web.Request) -> web.Response:
    """Sign with a new key from now on. `{"keep_old": false}` also unpublishes the old keys."""
    body = await _json_body(request)
    keep_old = body.get("keep_old", True)
    if not isinstance(keep_old, bool):
        raise _bad("keep_old must be true or false")
    keys = request.app[KEYS]
    new = keys.rotate(keep_old=keep_old)
    return web.json_response({"kid": new.kid, "published": [k["kid"] for k in keys.jwks()["keys"]]})


async def set_fault(request: web.Request) -> web.Response:
    """`{"mode": "error", "status": 503}` or `{"mode": "hang", "seconds": 30}`; `count` limits it."""
    body = await _json_body(request)
    mode, status = body.get("mode"), body.get("status", 503)
    seconds, count = body.get("seconds", 30), body.get("count")
    if mode not in ("error", "hang"):
        raise _bad("mode must be error or hang")
    if not isinstance(status, int) or not 500 <= status <= 599:
        raise _bad("status must be a 5xx code")
    if not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3600:
        raise _bad("seconds must be between 0 and 3600")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise _bad("count must be a positive integer or null")
    fault = Fault(mode=mode, status=status, seconds=float(seconds), remaining=count)
    request.app[HOOKS].fault = fault
    return web.json_response({"fault": asdict(fault)})


async def clear_fault(request: web.Request) -> web.Response:
    request.app[HOOKS].fault = None
    return web.json_response({"fault": None})


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = json.loads(await request.text())
    except ValueError as exc:
        raise _bad("body must be JSON") from exc
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    return body


def _bad(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": reason}), content_type="application/json")


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/_admin/outbox", outbox)
    app.router.add_get("/_admin/stats", stats)
    app.router.add_get("/_admin/stats/refresh", refresh_stats)
    app.router.add_get("/_admin/stats/identity", identity_stats)
    app.router.add_post("/_admin/stats/reset", reset_stats)
    app.router.add_post("/_admin/keys/rotate", rotate_keys)
    app.router.add_post("/_admin/faults", set_fault)
    app.router.add_delete("/_admin/faults", clear_fault)
