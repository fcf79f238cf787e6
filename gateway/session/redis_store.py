"""Redis sessions: the cookie holds only a random id; the sealed session lives in Redis.

For fleets: every gateway instance sees the same sessions, and sign-out really ends one.
The Redis key is a hash of the cookie id (a Redis dump does not reveal live cookies) and the
value is sealed like a cookie session (nor does it reveal tokens). Every request reads Redis
(a session ended on another instance is ended here too); an unchanged sealed value is opened
once and then found by its digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets

from aiohttp import web

from ..errors import SessionError
from .crypto import SecretBox
from .model import SessionState
from .redis_client import REDIS_ERRORS, RedisClient, many_get
from .sealed import SealedSessions
from .store import SetCookie, prefixed

KEY_PREFIX = "gw:session:"
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32): any other cookie value is no session
_SESSION_ID_KEY = web.RequestKey("redis_session_id", str)  # the id a request's session was loaded under


def redis_key(session_id: str) -> str:
    return KEY_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


class _Reads:
    """GETs asked for in the same turn of the event loop go to Redis as one MGET.

    Under load many requests load their sessions at once; one round trip for all of them costs
    far less than one each (redis-py spends more per command than Redis does). On a cluster the
    batch is split by hash slot (`many_get`).
    """

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.waiting: dict[str, list[asyncio.Future[bytes | None]]] = {}

    async def get(self, key: str) -> bytes | None:
        loop = asyncio.get_running_loop()
        if not self.waiting:
            loop.call_soon(self._send)
        future: asyncio.Future[bytes | None] = loop.create_future()
        self.waiting.setdefault(key, []).append(future)
        return await future

    def _send(self) -> None:
        batch, self.waiting = self.waiting, {}
        asyncio.get_running_loop().create_task(self._mget(batch))

    async def _mget(self, batch: dict[str, list[asyncio.Future[bytes | None]]]) -> None:
        keys = list(batch)
        futures = [future for waiting in batch.values() for future in waiting]
        try:
            values = await many_get(self.client)(keys)
        except asyncio.CancelledError:  # shutting down: nobody waits forever
            for future in futures:
                future.cancel()
            raise
        except Exception as exc:  # every waiter learns of it (a SessionError, a 503)
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for key, value in zip(keys, values):
            for future in batch[key]:
                if not future.done():
                    future.set_result(value.encode() if isinstance(value, str) else value)


class RedisSessionStore:
    def __init__(self, client: RedisClient, box: SecretBox, cookie_name: str, secure: bool, max_lifetime: float) -> None:
        self.cookie_name = prefixed(cookie_name, secure)
        self.client = client
        self.sealed = SealedSessions(box, max_lifetime)
        self.secure = secure
        self.reads = _Reads(client)

    def _session_id(self, request: web.BaseRequest) -> str | None:
        session_id = request.cookies.get(self.cookie_name)
        return session_id if session_id is not None and SESSION_ID.fullmatch(session_id) else None

    async def load(self, request: web.BaseRequest) -> SessionState | None:
        session_id = self._session_id(request)
        if session_id is None:
            return None
        key = redis_key(session_id)
        try:
            sealed = await self.reads.get(key)
        except REDIS_ERRORS as exc:
            raise SessionError(f"redis unreachable: {exc.__class__.__name__}") from None
        state = self.sealed.open(sealed.decode(), key) if sealed is not None else None
        if state is not None:
            request[_SESSION_ID_KEY] = session_id
        return state

    async def save(self, request: web.BaseRequest, state: SessionState) -> list[SetCookie]:
        old_id = self._session_id(request)
        # A fresh id at every sign-in: an id planted before sign-in is never promoted (fixation).
        # A refresh or an idle-timeout touch keeps the id the session was loaded under.
        session_id = old_id if old_id is not None and request.get(_SESSION_ID_KEY) == old_id else secrets.token_urlsafe(32)
        key = redis_key(session_id)
        remaining = max(1, self.sealed.seconds_left(state))
        sealed = self.sealed.seal(state, key)
        kept = session_id == old_id
        try:
            if old_id is not None and not kept:
                await self.client.delete(redis_key(old_id))
            # A kept id is only rewritten while it still exists (XX): a sign-out that ended it while this
            # request was refreshing must not be undone by this write.
            written = await self.client.set(key, sealed, ex=remaining, xx=kept)
        except REDIS_ERRORS as exc:
            raise SessionError(f"redis unreachable: {exc.__class__.__name__}") from None
        if not written:
            return [SetCookie(self.cookie_name, None, secure=self.secure)]
        request[_SESSION_ID_KEY] = session_id
        return [SetCookie(self.cookie_name, session_id, remaining, self.secure)]

    async def clear(self, request: web.BaseRequest) -> list[SetCookie]:
        old_id = self._session_id(request)
        if old_id is not None:
            try:
                await self.client.delete(redis_key(old_id))
            except REDIS_ERRORS as exc:
                raise SessionError(f"redis unreachable: {exc.__class__.__name__}") from None
        return [SetCookie(self.cookie_name, None, secure=self.secure)]
