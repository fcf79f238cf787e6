"""Access log lines without query strings: callbacks carry codes and state that must not reach logs.

Cheap when on: a line is one f-string, the timestamp is formatted once a second, and lines are
written to stderr in batches (every FLUSH_INTERVAL seconds, or MAX_PENDING lines) instead of one
logging record and one write(2) per request, which cost the gateway about a fifth of its
throughput (measured: docs/performance.md). Free when off: `logging.access_log: false` passes no
logger to aiohttp at all. The lines look like the other log lines (`time pid name LEVEL message`),
and are written only while the `aiohttp.access` logger is enabled for INFO.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time as clock

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

FLUSH_INTERVAL = 0.2  # seconds a line may wait
MAX_PENDING = 512


class _Batch:
    """The process's pending access lines: aiohttp makes one AccessLogger per connection, the lines share one write."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.flush_at: asyncio.TimerHandle | None = None
        self.second = -1
        self.stamp = ""
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

    def timestamp(self, now: float) -> str:
        """`2026-11-24 09:13:03,123`, as logging's default asctime."""
        second = int(now)
        if second != self.second:
            self.second, self.stamp = second, clock.strftime("%Y-%m-%d %H:%M:%S", clock.localtime(second))
        return f"{self.stamp},{int((now - second) * 1000):03d}"


_batch = _Batch()  # process-wide, like logging's own handlers


def flush() -> None:
    """Write what is pending now (at shutdown)."""
    _batch.flush()


class AccessLogger(AbstractAccessLogger):
    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)  # aiohttp skips the call (and its timing) when False

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        path = request.raw_path.partition("?")[0]  # still percent-encoded: a %0a cannot forge a log line
        _batch.add(
            f'{_batch.timestamp(clock.time())} {_batch.pid} {self.logger.name} INFO {request.remote} "{request.method} {path}" '
            f"{response.status} {response.body_length} {time * 1000:.1f}ms"
        )
