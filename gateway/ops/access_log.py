"""Access log lines without query strings: callbacks carry codes and state that must not reach logs."""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.1fms',
            request.remote,
            request.method,
            request.raw_path.partition("?")[0],  # still percent-encoded: a %0a cannot forge a log line
            response.status,
            response.body_length,
            time * 1000,
        )
