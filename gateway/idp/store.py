"""In-memory state of the local Cognito: users, codes, refresh tokens, Hosted UI sessions.

Signed-up or changed users and issued refresh tokens can be persisted to a JSON
file. The file holds password hashes and refresh-token *hashes* only, so a
leaked file cannot be replayed against the token endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import IdpConfig, UserConfig

log = logging.getLogger("gateway.idp")
REFRESH_SWEEP_INTERVAL = 60.0  # seconds between sweeps of expired refresh-token records


@dataclass(frozen=True)
class User:
    username: str
    sub: str
    password_hash: str
    email: str | None = None
    email_verified: bool = False
    phone_number: str | None = None
    groups: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    confirmed: bool = True
    confirmation_code: str | None = None
    reset_code: str | None = None


@dataclass(frozen=True)
class AuthCode:
    client_id: str
    redirect_uri: str
    username: str
    scopes: tuple[str, ...]
    auth_time: int
    expires_at: float
    nonce: str | None = None
    code_challenge: str | None = None


@dataclass(frozen=True)
class RefreshRecord:
    client_id: str
    username: str
    scopes: tuple[str, ...]
    auth_time: int
    origin_jti: str
    expires_at: float
    superseded_at: float | None = None  # rotation: when a newer token replaced this one


@dataclass(frozen=True)
class LoginSession:
    username: str
    auth_time: int
    expires_at: float


@dataclass
class OutboxMessage:
    kind: str  # "confirmation" | "forgot_password"
    username: str
    destination: str | None
    code: str
    sent_at: float = field(default_factory=time.time)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    scheme, _, rest = stored.partition("$")
    if scheme == "plain":  # config users: the YAML holds the password in clear anyway
        return hmac.compare_digest(password.encode(), rest.encode())
    salt_hex, _, digest_hex = rest.partition("$")
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=2**14, r=8, p=1, dklen=32)
    return hmac.compare_digest(digest.hex(), digest_hex)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user_from_config(pool_id: str, user: UserConfig) -> User:
    # A stable sub across restarts keeps sessions and test expectations meaningful.
    sub = user.sub or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{pool_id}/{user.username.lower()}"))
    return User(
        username=user.username, sub=sub, password_hash=f"plain${user.password}", email=user.email,
        email_verified=user.email_verified, phone_number=user.phone_number, groups=user.groups,
        attributes=user.attributes,
    )  # fmt: skip


class Store:
    """All mutable state; one instance per app, reached through the app's state."""

    def __init__(self, config: IdpConfig) -> None:
        self._users = {u.username.lower(): _user_from_config(config.user_pool_id, u) for u in config.users}
        self._changed_users: set[str] = set()
        self._codes: dict[str, AuthCode] = {}
        self._refresh: dict[str, RefreshRecord] = {}
        self._next_refresh_sweep = 0.0
        self._revoked_origins: set[str] = set()
        self._sessions: dict[str, LoginSession] = {}
        self.outbox: list[OutboxMessage] = []
        self._path = Path(config.persistence_file) if config.persistence_file else None
        if self._path and self._path.exists():
            self._load(self._path)

    # users -------------------------------------------------------------------------------

    def user(self, username: str) -> User | None:
        return self._users.get(username.strip().lower())

    def put_user(self, user: User) -> None:
        key = user.username.lower()
        self._users[key] = user
        self._changed_users.add(key)
        self._save()

    def send_code(self, kind: str, user: User) -> str:
        """Create a 6-digit code; it is logged on purpose: the log is the local Cognito's mailbox."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        self.outbox.append(OutboxMessage(kind, user.username, user.email, code))
        log.info("%s code for user %s: %s", kind.replace("_", " "), user.username, code)
        return code

    # authorization codes --------------------------------------------------------------------

    def add_code(self, code: AuthCode) -> str:
        now = time.time()  # unused codes would otherwise pile up in a long-running IdP
        self._codes = {k: c for k, c in self._codes.items() if c.expires_at > now}
        value = str(uuid.uuid4())
        self._codes[value] = code
        return value

    def take_code(self, value: str) -> AuthCode | None:
        """Codes are single-use: any exchange attempt, good or bad, consumes the code."""
        code = self._codes.pop(value, None)
        return code if code and code.expires_at > time.time() else None

    # refresh tokens -------------------------------------------------------------------------

    def add_refresh(self, token: str, record: RefreshRecord) -> None:
        now = time.time()
        if now >= self._next_refresh_sweep:
            # Expired records go now and then, not on every add: with rotation every refresh adds one,
            # and a sweep per add made each refresh cost O(all tokens) (milliseconds at 10,000 tokens).
            # Lookups check expiry themselves; the persistence file never holds expired records.
            self._refresh = {k: r for k, r in self._refresh.items() if r.expires_at > now}
            self._next_refresh_sweep = now + REFRESH_SWEEP_INTERVAL
        self._refresh[token_hash(token)] = record
        self._save()

    def refresh_record(self, token: str) -> RefreshRecord | None:
        return self._refresh.get(token_hash(token))

    def supersede_refresh(self, token: str) -> None:
        key = token_hash(token)
        if key in self._refresh and self._refresh[key].superseded_at is None:
            self._refresh[key] = replace(self._refresh[key], superseded_at=time.time())
            self._save()

    def revoke_origin(self, origin_jti: str) -> None:
        """Revoke one sign-in: its refresh tokens (all rotations) and the access tokens they issued."""
        self._revoked_origins.add(origin_jti)
        self._save()

    def is_revoked(self, origin_jti: str) -> bool:
        return origin_jti in self._revoked_origins

    # Hosted UI sessions ---------------------------------------------------------------------

    def add_session(self, username: str, lifetime: int) -> str:
        now = time.time()
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now}
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = LoginSession(username, int(time.time()), time.time() + lifetime)
        return session_id

    def session(self, session_id: str | None) -> LoginSession | None:
        found = self._sessions.get(session_id or "")
        return found if found and found.expires_at > time.time() else None

    def drop_session(self, session_id: str | None) -> None:
        self._sessions.pop(session_id or "", None)

    # persistence ------------------------------------------------------------------------------

    def _save(self) -> None:
        if not self._path:
            return
        now = time.time()
        data = {
            "version": 1,
            "users": [asdict(self._users[k]) for k in sorted(self._changed_users) if k in self._users],
            "refresh_tokens": {h: asdict(r) for h, r in self._refresh.items() if r.expires_at > now},
            "revoked_origins": sorted(self._revoked_origins),
        }
        tmp = self._path.with_suffix(self._path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self._path)  # atomic: a crash never leaves half a file

    def _load(self, path: Path) -> None:
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            users = [_tuples(User, u) for u in data.get("users", [])]
            refresh = {h: _tuples(RefreshRecord, r) for h, r in data.get("refresh_tokens", {}).items()}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable persistence file %s: %s", path, exc)
            return
        for user in users:
            self._users[user.username.lower()] = user
            self._changed_users.add(user.username.lower())
        self._refresh.update(refresh)
        self._revoked_origins.update(data.get("revoked_origins", []))


def _tuples(cls: type, data: dict[str, Any]) -> Any:
    """JSON turns tuples into lists; turn them back so frozen records compare equal."""
    fixed = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
             for k, v in data.items()}  # fmt: skip
    return cls(**fixed)
