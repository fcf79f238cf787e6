"""Access log lines without query strings: callbacks carry codes and state that must not reach logs.

Cheap when on (one %-format, done only if INFO is enabled for `aiohttp.access`), free when off
(`logging.access_log: false` passes no logger to aiohttp at all).
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class AccessLogger(AbstractAccessLogger):
    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)  # aiohttp skips the call (and its timing) when False

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
