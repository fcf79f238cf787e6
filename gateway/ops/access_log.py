"""Access log lines, text or JSON, with query values that look secret redacted.

A callback's query carries the authorization code and state; other apps put tokens, signatures or
passwords there. A value is replaced by `REDACTED` when its name says it may be a secret or
personal, or when it looks like one (a JWT, a long random-looking string, anything over 64
characters, a query nested in a value), so a line keeps the parameter names that tell an operator
what the request was, and nothing to replay.

Cheap when on: a line is one f-string (or one json.dumps), the timestamp is formatted once a
second, and lines are written to stderr in batches (every FLUSH_INTERVAL seconds, or MAX_PENDING
lines) instead of one logging record and one write(2) per request, which cost the gateway about a
fifth of its throughput (measured: docs/performance.md). Free when off: with `logging.access_log:
false` and no metrics, aiohttp gets no access logger at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time as clock
from typing import NamedTuple
from urllib.parse import unquote

from ..short_cache import cache_short

FLUSH_INTERVAL = 0.2  # seconds a line may wait
MAX_PENDING = 512
REDACTED = "REDACTED"
# Names matched after percent-decoding, anywhere in the name: `access_token`, `X-Amz-Signature`,
# `client_secret`, `pw`, `pin`... Over-matching (`zipcode`, `author`) costs a value in a log line,
# under-matching costs a secret in it.
_SECRET_NAME = re.compile(
    r"code|state|token|secret|pass|pw|pin|key|sig|session|sid|auth|credential|jwt|assertion|nonce|ticket|otp"
    r"|verifier|saml|cookie|email|phone",
    re.IGNORECASE,
)
_JWT = re.compile(r"[\w-]{8,}\.[\w-]{8,}\.[\w-]*")
_OPAQUE = re.compile(r"[A-Za-z0-9_\-+/=%.~]{24,}")  # long, no spaces: a token, hash or key more often than not
_NESTED = re.compile(r"%3[DdFf]|%26|=")  # a value holding a query of its own (`rd=/app?pass=x`)
MAX_LOGGED_VALUE = 64


def _looks_secret(name: str, value: str) -> bool:
    if _SECRET_NAME.search(unquote(name)):
        return True
    if len(value) > MAX_LOGGED_VALUE or _JWT.fullmatch(value) or _NESTED.search(value):
        return True
    return bool(_OPAQUE.fullmatch(value)) and any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


@cache_short(maxsize=4096, max_len=1024)
def loggable_target(raw_target: str) -> str:
    """The raw (percent-encoded) target with secret-looking query values redacted.

    Pairs are split on `&` and `;` (some servers read `;` as a separator too). Still
    percent-encoded: a `%0a` in the path cannot forge a line in the text format.
    """
    path, mark, query = raw_target.partition("?")
    if not mark:
        return path
    kept = []
    for pair in re.split("([&;])", query):
        name, equals, value = pair.partition("=")
        if pair in ("&", ";") or not (value or (not equals and name)):
            kept.append(pair)
        elif equals and _looks_secret(name, value):
            kept.append(f"{name}={REDACTED}")
        elif not equals and _looks_secret("", name):
            kept.append(REDACTED)
        else:
            kept.append(pair)
    return f"{path}?{''.join(kept)}"


class Entry(NamedTuple):
    """One answered request, as the access log tells it (a tuple: made on every request)."""

    remote: str
    method: str
    target: str  # from loggable_target
    status: int
    size: int
    seconds: float
    request_id: str
    rule: str  # "" for the gateway's own endpoints
    decision: str
    sub: str  # "" when nobody is signed in
    upstream: str  # "" when the gateway answered itself


class _Batch:
    """The process's pending access lines: aiohttp makes one logger per connection, the lines share one write."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.flush_at: asyncio.TimerHandle | None = None
        self.second = -1
        self.local = ""
        self.utc = ""
        self.pid = os.getpid()

    def add(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= MAX_PENDING:
            self.flush()
        elif self.flush_at is None:
            self.flush_at = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        if self.flush_at is not None:
            self.flush_at.cancel()
            self.flush_at = None
        if self.lines:
            # A raw path may hold a lone surrogate (a non-UTF-8 byte): escaped, never an encoding error.
            text = ("\n".join(self.lines) + "\n").encode("utf-8", "backslashreplace").decode()
            self.lines.clear()
            sys.stderr.write(text)
            sys.stderr.flush()

    def _tick(self, second: int) -> None:
        if second != self.second:
            self.second = second
            self.local = clock.strftime("%Y-%m-%d %H:%M:%S", clock.localtime(second))
            self.utc = clock.strftime("%Y-%m-%dT%H:%M:%S", clock.gmtime(second))

    def local_time(self, now: float) -> str:
        """`2026-11-24 09:13:03,123`, as logging's default asctime."""
        self._tick(int(now))
        return f"{self.local},{int((now - int(now)) * 1000):03d}"

    def utc_time(self, now: float) -> str:
        """`2026-11-24T09:13:03.123Z`, as the JSON event lines."""
        self._tick(int(now))
        return f"{self.utc}.{int((now - int(now)) * 1000):03d}Z"


_batch = _Batch()  # process-wide, like logging's own handlers


def flush() -> None:
    """Write what is pending now (at shutdown)."""
    _batch.flush()


def write_text(entry: Entry, logger_name: str) -> None:
    """`time pid logger INFO remote "METHOD target" status size duration`, then what the gate decided."""
    gate = f" rule={entry.rule} decision={entry.decision}" if entry.rule else ""
    user = f" sub={entry.sub}" if entry.sub else ""
    target = entry.target.replace("\\", "\\x5c").replace('"', "\\x22")  # as nginx: the quoted field stays one field
    _batch.add(
        f'{_batch.local_time(clock.time())} {_batch.pid} {logger_name} INFO {entry.remote} "{entry.method} {target}" '
        f"{entry.status} {entry.size} {entry.seconds * 1000:.1f}ms id={entry.request_id}{gate}{user}"
    )


def write_json(entry: Entry, logger_name: str) -> None:
    record = {
        "time": _batch.utc_time(clock.time()),
        "level": "INFO",
        "logger": logger_name,
        "type": "access",
        "request_id": entry.request_id,
        "remote": entry.remote,
        "method": entry.method,
        "path": entry.target,
        "status": entry.status,
        "bytes": entry.size,
        "duration_ms": round(entry.seconds * 1000, 2),
        "rule": entry.rule,
        "decision": entry.decision,
        "sub": entry.sub,
        "upstream": entry.upstream,
        "pid": _batch.pid,
    }
    _batch.add(json.dumps(record, ensure_ascii=True))  # ascii: a lone surrogate is escaped, never an error
