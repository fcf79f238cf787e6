"""Process-wide log setup: `logging.format` text or json, the same in the parent and every worker.

JSON: one object per line, `{"time", "level", "logger", "message", "pid", "request_id"?}`, with
`exception` holding a traceback when there is one. An event logged while a request is handled
carries that request's id (ops/request_id.py). Access lines have their own writer
(ops/access_log.py) and `"type": "access"`; events have `"type": "event"`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from aiohttp.http_exceptions import HttpProcessingError

from ..config import LogFormat, LoggingConfig
from . import request_id

TEXT_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "type": "event",
            "message": record.getMessage(),
            "pid": record.process if record.process is not None else os.getpid(),
        }
        current = request_id.current.get()
        if current:
            event["request_id"] = current
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=True)


class MalformedRequests(logging.Filter):
    """aiohttp logs a request its parser refused as an ERROR with a traceback whose message quotes
    the offending raw bytes: a header line with its `Authorization` or `Cookie` value, a request
    line with its query. Anyone can send those, so they become one WARNING line naming the kind of
    fault, without the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "refused a malformed request from %s: %s", (remote, type(error).__name__)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure(settings: LoggingConfig) -> None:
    """Call once per process (the parent and each worker), before the gateway starts."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format is LogFormat.JSON else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequests) for f in server.filters):
        server.addFilter(MalformedRequests())
