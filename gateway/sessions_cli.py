"""`python -m gateway sessions list|revoke --user NAME`: a user's sessions across the fleet; revoke ends them.

Both need Redis (`session.uses_redis`): the index of who is signed in where (session/user_index.py)
and the fleet's ended-session records (session/shared_ends.py) live there.

- `list` reads the user's index entries: one line per session (a prefix of its id, when it began,
  its tokens last changed, it expires, the username, whether it holds a refresh token, whether it
  has been ended), then a summary line. No token value is ever read out of an entry for printing.
- `revoke` first records "every session of this sub begun before now has ended" in Redis and
  publishes it: every subscribed instance refuses those sessions within milliseconds, including
  sessions the index never saw. Then it revokes each indexed refresh token at the provider (a few
  at a time, each within `provider.timeout`) and removes the entries it is done with. An entry
  whose token the provider did not revoke stays in the index, so running the command again retries.

A name is taken as a sub when sessions are indexed under it, else looked up as a Cognito username
(the index maps them to subs for sessions signed in while Redis was configured), else taken as a
sub: the gateway ends sessions by sub.

Exit codes: 0 done; 1 the config, Redis or the provider's config failed (for `revoke`: nothing was
ended when Redis failed); 2 no Redis configured (nothing to read or write) or a usage error; 3 (`revoke` only) the
sessions are ended but some refresh tokens could not be revoked at the provider: run it again.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import aiohttp

from .config import Config, SessionConfig
from .doctor_answers import without_password
from .errors import ProviderError
from .oidc.provider import Provider
from .session import shared_ends
from .session.ends import Ended
from .session.redis_client import REDIS_ERRORS, RedisClient, connect
from .session.user_index import IndexedSession, UserIndex, user_key

OK, FAILED, NO_REDIS, PARTLY = 0, 1, 2, 3
USAGE = 2  # as argparse
NEEDS_REDIS = (
    "sessions: this config has no Redis: ending sessions on every instance needs one "
    "(session.store: redis, or session.redis_url with cookie sessions) — see docs/security.md \"Ending sessions\""
)
SID_SHOWN = 8  # characters of a session id: enough to tell a user's sessions apart
REVOKE_AT_ONCE = 8  # revocation calls in flight at the provider


def utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def named(user: str, sub: str) -> str:
    """How the user is named in a summary: `alice (sub …)`, or the sub alone when that was given."""
    return user if user == sub else f"{user} (sub {sub})"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Listed:
    entry: IndexedSession
    ended: bool  # by a sign-out, a refused refresh, or a revocation: refused on every instance


def session_line(listed: Listed) -> str:
    """One session, no token value: only whether it has a refresh token."""
    entry = listed.entry
    return "  ".join(
        (
            f"session {entry.sid[:SID_SHOWN]}",
            f"started {utc(entry.started_at)}",
            f"refreshed {utc(entry.refreshed_at)}",
            f"expires {utc(entry.expires_at)}",
            f"user {entry.username or '-'}",
            f"refresh token: {'yes' if entry.refresh_token else 'no'}",
            "ended" if listed.ended else "active",
        )
    )


def list_lines(user: str, sub: str, sessions: list[Listed]) -> list[str]:
    if not sessions:
        return [f"{named(user, sub)}: no sessions"]
    ended = sum(listed.ended for listed in sessions)
    summary = f"{named(user, sub)}: {plural(len(sessions), 'session')}"
    if ended:
        summary += f" ({ended} ended)"
    return [*(session_line(listed) for listed in sessions), summary]


@dataclass
class Revocations:
    """What the provider made of a user's refresh tokens."""

    revoked: int = 0
    failed: int = 0
    without_token: int = 0  # sessions that never had a refresh token
    unsupported: bool = False  # the provider publishes no revocation endpoint
    reasons: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)  # sids the index can forget


def revoke_summary(user: str, sub: str, indexed: int, outcome: Revocations) -> str:
    """The one line `sessions revoke` ends with."""
    if not indexed:
        return f"{named(user, sub)}: no indexed sessions; any session of {user} begun before now is ended on every instance"
    line = f"{named(user, sub)}: {plural(indexed, 'session')} ended on every instance"
    tokens = outcome.revoked + outcome.failed
    if outcome.unsupported:
        return f"{line}; the provider has no revocation endpoint: {plural(tokens, 'refresh token')} stay valid there until they expire"
    if tokens:
        line += f"; {plural(outcome.revoked, 'refresh token')} revoked at the provider"
    if outcome.failed:
        reason = "; ".join(dict.fromkeys(outcome.reasons)) or "no answer"
        line += f", {outcome.failed} not ({reason}): run again to retry"
    if outcome.without_token:
        line += f" ({outcome.without_token} without a refresh token)"
    return line


def redis_named(session: SessionConfig) -> str:
    shown = without_password(session.redis_url)
    if session.redis_sentinels:
        shown += " via " + ", ".join(f"{host}:{port}" for host, port in session.redis_sentinels)
    return shown


async def ended_at(client: RedisClient, members: list[str]) -> dict[str, float]:
    """When each of these `gw:ended` members was recorded (absent: never)."""
    found = {}
    for member in members:
        score = await client.zscore(shared_ends.KEY, member)
        if score is not None:
            found[member] = float(score)
    return found


async def list_sessions(config: Config, client: RedisClient, user: str) -> list[str]:
    index = UserIndex.of(client, config.session)
    sub = await index.sub_of(user)
    entries = await index.sessions(sub)
    recorded = await ended_at(client, ["u:" + sub, *("s:" + entry.sid for entry in entries)])
    user_ended = recorded.get("u:" + sub, -1.0)
    return list_lines(user, sub, [Listed(entry, "s:" + entry.sid in recorded or entry.started_at <= user_ended) for entry in entries])


async def revoke_tokens(config: Config, entries: list[IndexedSession]) -> Revocations:
    outcome = Revocations()
    with_token = [entry for entry in entries if entry.refresh_token]
    outcome.without_token = len(entries) - len(with_token)
    outcome.done = [entry.sid for entry in entries if not entry.refresh_token]
    if not with_token or config.provider is None:
        outcome.failed = len(with_token)
        outcome.reasons = ["no provider configured"] if with_token else []
        return outcome
    reasons = _Reasons()
    oidc_log = logging.getLogger("gateway.oidc")
    oidc_log.addHandler(reasons)  # the client logs why a revocation failed; no token is in those lines
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), headers={"User-Agent": "cognito-gateway sessions"}) as http:
            provider = Provider(config.provider, lambda: http)
            try:
                loaded = await provider.load()
            except ProviderError as exc:
                outcome.failed = len(with_token)
                outcome.reasons = [f"provider unreachable: {exc}"]
                return outcome
            if not loaded.endpoints.revoke:
                outcome.unsupported = True
                outcome.failed = len(with_token)
                outcome.done = [entry.sid for entry in entries]  # retrying cannot help
                return outcome
            at_once = asyncio.Semaphore(REVOKE_AT_ONCE)

            async def revoke(entry: IndexedSession) -> bool:
                assert entry.refresh_token is not None
                async with at_once:
                    return await loaded.client.revoke(entry.refresh_token)

            results = await asyncio.gather(*(revoke(entry) for entry in with_token))
    finally:
        oidc_log.removeHandler(reasons)
    for entry, revoked in zip(with_token, results):
        if revoked:
            outcome.revoked += 1
            outcome.done.append(entry.sid)
        else:
            outcome.failed += 1
    outcome.reasons = reasons.messages
    return outcome


class _Reasons(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def revoke_sessions(config: Config, client: RedisClient, user: str) -> tuple[list[str], int]:
    index = UserIndex.of(client, config.session)
    sub = await index.sub_of(user)
    # First the end, for every instance and every session of the sub begun until now (indexed or not).
    # Redis failing here: nothing was done, the caller says so.
    await shared_ends.write(client, Ended("u", sub, time.time()), config.session.max_lifetime)
    try:
        entries = await index.sessions(sub)
        outcome = await revoke_tokens(config, entries)
        if outcome.done:
            await client.hdel(user_key(sub), *outcome.done)
    except REDIS_ERRORS as exc:
        return [
            f"{named(user, sub)}: every session begun before now is ended on every instance, but redis failed "
            f"afterwards ({exc.__class__.__name__}): run again to revoke the refresh tokens at the provider"
        ], FAILED
    lines = [revoke_summary(user, sub, len(entries), outcome)]
    if user == sub and not entries:
        lines.append(f"(a username is known only from sessions signed in while Redis was configured: if {user} is a username, give its sub)")
    return lines, PARTLY if outcome.failed and not outcome.unsupported else OK


async def _run(config: Config, action: str, user: str) -> tuple[list[str], int]:
    client = connect(config.session)
    try:
        if action == "list":
            return await list_sessions(config, client, user), OK
        return await revoke_sessions(config, client, user)
    finally:
        await client.aclose()


def run(config: Config, action: str, user: str) -> int:
    """Print what `sessions list|revoke` found or did; the exit code (see the module's docstring)."""
    if not user:
        print("sessions: --user is empty: give a username or a sub", file=sys.stderr)
        return USAGE
    if not config.session.uses_redis:
        print(NEEDS_REDIS, file=sys.stderr)
        return NO_REDIS
    if action == "revoke" and config.provider is None:
        print("sessions: this config has no provider: there is no sign-in, so no session to revoke", file=sys.stderr)
        return FAILED
    try:
        lines, code = asyncio.run(_run(config, action, user))
    except REDIS_ERRORS as exc:
        done = "nothing was revoked" if action == "revoke" else "nothing was read"
        print(f"sessions: redis unreachable at {redis_named(config.session)} ({exc.__class__.__name__}): {done}", file=sys.stderr)
        return FAILED
    for line in lines:
        print(line)
    return code
