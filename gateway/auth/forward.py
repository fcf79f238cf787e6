"""/oauth2/auth: forward-auth for nginx `auth_request`, Caddy `forward_auth` and Traefik `ForwardAuth`.

The proxy in front asks about the original request (method, URI, host in headers); the gateway
applies the same rules a proxied request would get and answers:
- 202 with the identity headers (for the proxy to copy to the upstream request);
- 401 or 403 (for nginx: auth_request understands only 2xx, 401 and 403);
- for Caddy and Traefik, which hand a non-2xx answer to the browser as it is, a browser that
  must sign in gets the 302 to /oauth2/start directly.

Only peers in `trusted_proxies` are answered: the answer carries identity (and tokens, when
configured), and the headers describing the original request are only as true as the proxy
that sets them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from ..hosts import host_name, valid_host
from ..proxy.headers import Network, is_trusted
from ..responses import error_response, wants_json
from ..session.cookies import MIRROR_COOKIES
from .decide import Decision
from .gate import Gate
from .login import redirect
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110 §5.6.2)


@dataclass(frozen=True)
class OriginalRequest:
    method: str
    host: str
    target: str
    asked_by_nginx: bool


def _one_of(headers: CIMultiDictProxy[str], names: tuple[str, str], default: str) -> str | None:
    """The value the proxy set under either name; None when the two disagree.

    A proxy sets one of them and passes the client's other headers along: a client adding the
    other name (X-Original-URI behind Traefik, X-Forwarded-Uri behind nginx) must not be believed.
    """
    values = {headers[name] for name in names if name in headers}
    if len(values) > 1:
        return None
    return values.pop() if values else default


def original_request(request: web.Request) -> OriginalRequest | None:
    """The request the proxy is asking about, or None when its headers contradict each other or the host is malformed."""
    headers = request.headers
    target = _one_of(headers, ("X-Original-URI", "X-Forwarded-Uri"), "/")
    method = _one_of(headers, ("X-Original-Method", "X-Forwarded-Method"), "GET")
    host = headers.get("X-Forwarded-Host") or headers.get("Host") or ""
    if target is None or method is None or not valid_host(host):
        return None
    if not (target.isascii() and target.isprintable() and _METHOD.fullmatch(method)):
        return None  # a request line is ASCII; nginx passes raw high bytes along, aiohttp reads them as surrogates
    return OriginalRequest(method.upper(), host_name(host), target, "X-Original-URI" in headers)


class ForwardAuth:
    def __init__(self, gate: Gate, public_url: str, trusted_proxies: tuple[Network, ...]) -> None:
        self.gate = gate
        self.public_url = public_url
        self.trusted_proxies = trusted_proxies

    async def handle(self, request: web.Request) -> web.Response:
        if not is_trusted(request.remote, self.trusted_proxies):
            return error_response(request, 403, "untrusted_peer", "Forward-auth answers only the proxies in trusted_proxies.", json_only=True)
        original = original_request(request)
        if original is None:
            return error_response(request, 403, "conflicting_headers", "The original request's headers contradict each other or are malformed.", json_only=True)
        request[MIRROR_COOKIES] = True  # a refreshed session's cookies, for the proxy to pass on
        method, target, nginx = original.method, original.target, original.asked_by_nginx
        verdict = await self.gate.verdict(request, method, original.host, target)
        if verdict.decision is Decision.ALLOW:
            return web.Response(status=202, headers=CIMultiDict([("Cache-Control", "no-store"), *verdict.headers_to_set]))
        if verdict.decision is Decision.SIGN_IN and not nginx and not wants_json(request, method):
            # Absolute: Traefik resolves a relative Location against the forwardAuth address, not the browser's.
            return redirect(f"{self.public_url}{self.gate.endpoints_prefix}/start?{urlencode({'rd': target})}")
        if verdict.decision is Decision.BAD_PATH and nginx:
            return error_response(request, 403, verdict.error, verdict.reason, json_only=True)  # nginx: 400 would become 500
        if verdict.decision is Decision.SIGN_IN:
            return error_response(request, 401, "unauthenticated", "Sign-in required.", json_only=True)
        return self.gate.refusal(request, verdict)
