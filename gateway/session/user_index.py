"""Which sessions each user has, in Redis: what `sessions list` shows and `sessions revoke` ends.

Cookie sessions live in browsers, so without an index nobody could say where a user is signed in,
nor revoke their refresh tokens at the provider. One Redis hash per user (`gw:user:<hash of sub>`),
a field per session id, each value sealed with the session secrets (it holds the refresh token); a
second key maps the Cognito username to the sub, so either names the user. Only `cognito:username`
is mapped: it is unique in a user pool, where another provider's `preferred_username` is chosen by
the user (and could be made to name someone else). Written when a session's tokens change (sign-in,
refresh), never on a plain request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..config import SessionConfig
from ..ops import metrics
from .crypto import SecretBox
from .model import SessionState, username_of
from .redis_client import REDIS_ERRORS, RedisClient

log = logging.getLogger("gateway.session")


def user_key(sub: str) -> str:
    return "gw:user:" + hashlib.sha256(sub.encode()).hexdigest()


def username_key(username: str) -> str:
    return "gw:username:" + hashlib.sha256(username.encode()).hexdigest()


@dataclass(frozen=True)
class IndexedSession:
    sid: str
    sub: str
    username: str
    started_at: float
    expires_at: float  # started_at + max_lifetime
    refreshed_at: float  # when its tokens last changed
    refresh_token: str | None

    @classmethod
    def of(cls, state: SessionState, max_lifetime: float, now: float) -> "IndexedSession":
        signed_in = state.signed_in
        return cls(
            state.sid, state.sub, username_of(signed_in.claims), state.started_at, state.started_at + max_lifetime, now,
            signed_in.refresh_token,
        )  # fmt: skip


class UserIndex:
    def __init__(self, client: RedisClient, box: SecretBox, max_lifetime: float) -> None:
        self.client = client
        self.box = box
        self.max_lifetime = max_lifetime

    @classmethod
    def of(cls, client: RedisClient, session: SessionConfig) -> "UserIndex":
        """The index as the gateway and `sessions` both read it: sealed with the session secrets."""
        return cls(client, SecretBox(session.secrets, "index"), session.max_lifetime)

    async def record(self, state: SessionState) -> None:
        """Best effort: a session missing from the index still ends by its user (sessions revoke)."""
        now = time.time()
        entry = IndexedSession.of(state, self.max_lifetime, now)
        if not entry.sub:
            return
        key = user_key(entry.sub)
        sealed = self.box.seal(json.dumps(asdict(entry)).encode(), f"{key}\0{entry.sid}".encode())
        # No session written now outlives max_lifetime from now: the hash lives as long as its newest entry needs.
        ttl = int(self.max_lifetime) + 1
        try:
            await self.client.hset(key, entry.sid, sealed)
            await self.client.expire(key, ttl)
            cognito_username = state.signed_in.claims.get("cognito:username")
            if isinstance(cognito_username, str) and cognito_username:
                await self.client.set(username_key(cognito_username), entry.sub, ex=ttl)
        except REDIS_ERRORS as exc:
            metrics.SESSION_STORE_ERRORS.inc()
            log.error("could not index the session for `sessions list`: redis unreachable: %s", exc.__class__.__name__)

    async def sub_of(self, user: str) -> str:
        """The sub `user` names: itself when sessions are indexed under it as a sub, else the sub its
        Cognito username maps to, else `user` itself (a sub, or a name with no indexed session)."""
        if await self.client.exists(user_key(user)):
            return user
        found = await self.client.get(username_key(user))
        if found is None:
            return user
        return found.decode() if isinstance(found, bytes) else str(found)

    async def sessions(self, sub: str) -> list[IndexedSession]:
        """The user's sessions still within max_lifetime, oldest first. Raises REDIS_ERRORS."""
        key = user_key(sub)
        fields: dict[Any, Any] = await self.client.hgetall(key)
        now = time.time()
        found = []
        for raw_sid, sealed in fields.items():
            sid = raw_sid.decode() if isinstance(raw_sid, bytes) else str(raw_sid)
            text = sealed.decode() if isinstance(sealed, bytes) else str(sealed)
            opened = self.box.open(text, f"{key}\0{sid}".encode())
            if opened is None:
                continue  # sealed with a secret no longer configured
            try:
                entry = IndexedSession(**json.loads(opened))
            except (ValueError, TypeError):
                continue
            if entry.expires_at > now and entry.sid == sid:
                found.append(entry)
        return sorted(found, key=lambda entry: entry.started_at)

    async def forget_session(self, state: SessionState) -> None:
        """Best effort: signed out (an entry left behind is harmless: the session is ended)."""
        try:
            await self.client.hdel(user_key(state.sub), state.sid)
        except REDIS_ERRORS as exc:
            log.error("could not remove a signed-out session from the index: redis unreachable: %s", exc.__class__.__name__)

    async def forget(self, sub: str) -> None:
        await self.client.delete(user_key(sub))
