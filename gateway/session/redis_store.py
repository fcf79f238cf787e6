"""Redis sessions: the cookie holds only a random id; the sealed session lives in Redis.

For fleets: every gateway instance sees the same sessions, and sign-out really ends one.
The Redis key is a hash of the cookie id (a Redis dump does not reveal live cookies) and the
value is sealed like a cookie session (nor does it reveal tokens).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from typing import Any

import redis.asyncio as redis
from aiohttp import web
from aiohttp_session import AbstractStorage, Session

from .cookie_store import cookie_attributes, prefixed
from .model import envelope, signed_in_at
from ..errors import SessionError
from .crypto import SecretBox

KEY_PREFIX = "gw:session:"
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32): any other cookie value is no session


def redis_key(session_id: str) -> str:
    return KEY_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


class RedisSessionStorage(AbstractStorage):
    def __init__(self, client: redis.Redis, box: SecretBox, cookie_name: str, secure: bool, max_lifetime: float) -> None:
        super().__init__(cookie_name=prefixed(cookie_name, secure), max_age=int(max_lifetime), **cookie_attributes(secure))
        self.client = client
        self.box = box
        self.secure = secure
        self.max_lifetime = max_lifetime

    def _session_id(self, request: web.Request) -> str | None:
        session_id = self.load_cookie(request)
        return session_id if isinstance(session_id, str) and SESSION_ID.fullmatch(session_id) else None

    async def load_session(self, request: web.Request) -> Session:
        session_id = self._session_id(request)
        try:
            data = await self._read(session_id) if session_id else None
        except (redis.RedisError, OSError) as exc:
            raise SessionError(f"redis unreachable: {exc.__class__.__name__}") from None
        if data is None:
            return Session(None, data=None, new=True, max_age=self.max_age)
        return Session(session_id, data=data, new=False, max_age=self.max_age)

    async def _read(self, session_id: str) -> dict[str, Any] | None:
        key = redis_key(session_id)
        sealed = await self.client.get(key)
        opened = self.box.open(sealed.decode(), key.encode()) if sealed else None
        if opened is None:
            return None
        data = envelope(opened)
        if data is None or time.time() - signed_in_at(data) > self.max_lifetime:
            return None
        return data

    async def save_session(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        try:
            await self._write(request, response, session)
        except (redis.RedisError, OSError) as exc:
            raise SessionError(f"redis unreachable: {exc.__class__.__name__}") from None

    async def _write(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        old_id = self._session_id(request)
        data = self._get_session_data(session)
        if not data:
            if old_id:
                await self.client.delete(redis_key(old_id))
            response.del_cookie(self.cookie_name, **cookie_attributes(self.secure))
            return
        session_id = session.identity
        if session.new or session_id is None:
            # A fresh id at every sign-in: an id planted before sign-in is never promoted (fixation).
            session_id = secrets.token_urlsafe(32)
            session.set_new_identity(session_id)
            if old_id:
                await self.client.delete(redis_key(old_id))
        key = redis_key(session_id)
        remaining = max(1, int(signed_in_at(data) + self.max_lifetime - time.time()))
        sealed = self.box.seal(json.dumps(data, separators=(",", ":")).encode(), key.encode())
        await self.client.set(key, sealed, ex=remaining)
        response.set_cookie(self.cookie_name, session_id, max_age=remaining, **cookie_attributes(self.secure))
