"""GET /oauth2/aws-credentials: temporary AWS credentials for the signed-in user, from a Cognito identity pool.

The session's id token goes to the identity pool (`GetId`, then `GetCredentialsForIdentity`); the
answer is kept in this process's memory, keyed by a hash of the id token, until five minutes before
it expires, and concurrent requests of one session share one fetch. Credentials are never put in
the cookie (it would grow by 2 KB and outlive them) and never logged.

Only the gateway's own pages may read them. The session cookie is SameSite=Lax, so another site
can only carry it on a top-level navigation, and the answer carries no CORS headers, so no other
origin's script can read it anyway; as a second wall, a request a browser marks as coming from
another site (Sec-Fetch-Site `cross-site` or `same-site`, or, from browsers without it, an Origin or
Referer not ours) is refused. Bearer tokens are not taken: GetId needs an id token, which only a
session holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Callable

from aiohttp import web

from ..oidc.identity_pool import AwsCredentials, IdentityPoolClient, IdentityPoolError, Refusal
from ..responses import PAGE_HEADERS, error_response
from ..session.model import unverified_payload
from ..ttl_cache import TtlCache
from .authenticate import SESSION, Authenticator
from .same_origin import OwnOrigins, origin_of

log = logging.getLogger("gateway.aws_credentials")

MARGIN = 300.0  # seconds before Expiration that cached credentials stop being handed out
IDENTITY_TTL = 86400.0  # an identity id never changes for a user; re-asked daily in case the pool was replaced
REFUSAL_TTL = 30.0  # a refused user asking again is answered from memory: the pool's quota is the account's
_ANSWER_HEADERS = {**PAGE_HEADERS, "Pragma": "no-cache", "Cross-Origin-Resource-Policy": "same-origin", "Vary": "Cookie"}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gateway"'}


def fresh_until(expiration: float, now: float) -> float:
    """When cached credentials stop being handed out: MARGIN before expiry, or halfway for short-lived ones."""
    return expiration - min(MARGIN, max(0.0, expiration - now) / 2)


def from_another_site(request: web.BaseRequest, own_origins: OwnOrigins) -> bool:
    """True on evidence that a page of another site sent the request; clients that say nothing pass."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in ("same-origin", "none")  # same-site: a sibling subdomain is another app
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == "null" or not own_origins.allows(request, origin)
    referer = request.headers.get("Referer")
    if referer:
        referer_origin = origin_of(referer)
        return referer_origin is None or not own_origins.allows(request, referer_origin)
    return False


def _key(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode()).digest()


class AwsCredentialsEndpoint:
    def __init__(
        self, client: IdentityPoolClient, authenticator: Authenticator, own_origins: OwnOrigins, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.authenticator = authenticator
        self.own_origins = own_origins
        self.clock = clock
        self._credentials: TtlCache[AwsCredentials] = TtlCache(clock=clock)
        self._refusals: TtlCache[IdentityPoolError] = TtlCache(clock=clock)
        self._identities: TtlCache[str] = TtlCache(clock=clock)
        self._inflight: dict[bytes, asyncio.Task[AwsCredentials]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        if from_another_site(request, self.own_origins):
            return error_response(request, 403, "cross_site", "AWS credentials are given to this site's own pages only.", json_only=True)
        principal = await self.authenticator.session_principal(request)  # ended, idle, lifetime and refresh applied
        session = request.get(SESSION) if principal is not None else None  # as refreshed on this request, if it was
        if session is None:
            return error_response(request, 401, "unauthenticated", "Sign-in required.", headers=_CHALLENGE, json_only=True)
        try:
            credentials = await self.credentials(session.signed_in.id_token)
        except IdentityPoolError as exc:
            return self._refused(request, exc)
        return web.json_response(credentials.to_json(), headers=_ANSWER_HEADERS)

    async def credentials(self, id_token: str) -> AwsCredentials:
        """Cached, or fetched once however many requests of the session ask at the same time."""
        key = _key(id_token)
        cached = self._credentials.get(key)
        if cached is not None:
            return cached
        refused = self._refusals.get(key)
        if refused is not None:
            raise refused.with_traceback(None)  # one object raised again and again: no traceback piling up on it
        claims = unverified_payload(id_token)  # verified at sign-in, sealed in the session since
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= self.clock():
            raise IdentityPoolError(Refusal.NOT_AUTHORIZED, "id_token_expired")
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key, str(claims.get("iss", "")), str(claims.get("sub", "")), id_token))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)  # one caller going away must not cancel the others' fetch

    def _forget(self, key: bytes, task: asyncio.Task[AwsCredentials]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so a fetch whose callers all left is not logged as unhandled

    async def _fetch(self, key: bytes, issuer: str, sub: str, id_token: str) -> AwsCredentials:
        identity_key = _key(issuer, sub)
        try:
            identity_id = self._identities.get(identity_key)
            if identity_id is None:
                identity_id = await self.client.get_id(issuer, id_token)
                self._identities.put(identity_key, identity_id, self.clock() + IDENTITY_TTL)
            credentials = await self.client.get_credentials(identity_id, issuer, id_token)
        except IdentityPoolError as exc:
            if exc.kind is not Refusal.UNAVAILABLE:
                self._identities.discard(identity_key)  # perhaps no longer this user's: ask GetId next time
            if exc.kind is Refusal.NOT_AUTHORIZED:
                self._refusals.put(key, exc, self.clock() + REFUSAL_TTL)
            raise
        self._credentials.put(key, credentials, fresh_until(credentials.expiration, self.clock()))
        return credentials

    def _refused(self, request: web.Request, exc: IdentityPoolError) -> web.Response:
        # The code and AWS's message only: neither holds a token or a key.
        if exc.code == "id_token_expired":
            return error_response(
                request, 401, "unauthenticated", "The session's id token has expired; sign in again.", headers=_CHALLENGE, json_only=True
            )
        log.warning("identity pool %s: %s", exc.kind.value, exc)
        if exc.kind is Refusal.NOT_AUTHORIZED:
            return error_response(request, 403, "identity_pool_refused", f"The identity pool gives this user no AWS credentials ({exc.code}).", json_only=True)
        if exc.kind is Refusal.MISCONFIGURED:
            return error_response(request, 502, "identity_pool_error", f"The identity pool refused the request ({exc.code}).", json_only=True)
        return error_response(
            request, 503, "identity_pool_unavailable", f"The identity pool cannot be reached right now ({exc.code}). Try again in a moment.",
            headers={"Retry-After": "5"}, json_only=True,
        )  # fmt: skip
