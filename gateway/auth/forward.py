"""/oauth2/auth: forward-auth for nginx `auth_request`, Caddy `forward_auth` and Traefik `ForwardAuth`.

The proxy in front asks about the original request (method, URI, host in headers); the gateway
applies the same rules a proxied request would get and answers:
- 202 with the identity headers (for the proxy to copy to the upstream request);
- 401 or 403 (for nginx: auth_request understands only 2xx, 401 and 403);
- for Caddy and Traefik, which hand a non-2xx answer to the browser as it is, a browser that
  must sign in gets the 302 to /oauth2/start directly.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web
from multidict import CIMultiDict

from ..hosts import split_host
from ..responses import error_response, wants_json
from .gate import Decision, Gate
from .identity import IdentityHeaders
from .middleware import refusal

# Refreshed session cookies, mirrored one per header: nginx's $upstream_http_set_cookie holds only
# the first Set-Cookie line, and a chunked session needs all of them (docs/deployment.md).
MIRRORED_COOKIE_HEADER = "X-Auth-Set-Cookie-{}"
MAX_MIRRORED = 4
FORWARD_AUTH_ROUTE = "forward_auth"


def original_request(request: web.Request) -> tuple[str, str, str, bool]:
    """(method, host, target, asked_by_nginx) of the request the proxy is asking about."""
    headers = request.headers
    nginx_uri = headers.get("X-Original-URI")
    target = nginx_uri or headers.get("X-Forwarded-Uri") or "/"
    method = headers.get("X-Original-Method") or headers.get("X-Forwarded-Method") or "GET"
    host = headers.get("X-Forwarded-Host") or headers.get("Host", "")
    return method.upper(), split_host(host)[0].lower(), target, nginx_uri is not None


async def forward_auth(request: web.Request, gate: Gate, identity: IdentityHeaders, endpoints_prefix: str) -> web.Response:
    method, host, target, nginx = original_request(request)
    verdict = await gate.decide(request, method, host, target)
    if verdict.decision is Decision.ALLOW:
        headers: CIMultiDict[str] = CIMultiDict()
        if verdict.principal is not None:
            await identity.add(headers, verdict.principal)
        return web.Response(status=202, headers=headers)
    if verdict.decision is Decision.SIGN_IN and not nginx and not wants_json(request, method):
        location = f"{endpoints_prefix}/start?{urlencode({'rd': target})}"
        return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})
    if verdict.decision is Decision.BAD_PATH and nginx:
        return error_response(request, 403, verdict.error, verdict.reason, json_only=True)  # nginx: 400 would become 500
    if verdict.decision is Decision.SIGN_IN:
        return error_response(request, 401, "unauthenticated", "Sign-in required.", json_only=True)
    return refusal(request, verdict, endpoints_prefix)


async def mirror_set_cookies(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: each Set-Cookie of a forward-auth answer also in its own X-Auth-Set-Cookie-N."""
    if request.match_info.route.name != FORWARD_AUTH_ROUTE:
        return
    for index, morsel in enumerate(list(response.cookies.values())[:MAX_MIRRORED]):
        response.headers[MIRRORED_COOKIE_HEADER.format(index)] = morsel.OutputString()
