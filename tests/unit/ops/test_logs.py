"""Event lines: text for people, one JSON object per line for shippers, with the request id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from gateway.config import LogFormat, LoggingConfig
from gateway.ops import logs, request_id


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_events_carry_the_request_id_and_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(LoggingConfig(format=LogFormat.JSON))
    token = request_id.current.set("rid-42")
    try:
        logging.getLogger("gateway.proxy").warning("upstream timeout: %s %s", "GET", "http://app")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("gateway").exception("failed")
    finally:
        request_id.current.reset(token)
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "upstream timeout: GET http://app" and first["level"] == "WARNING"
    assert first["logger"] == "gateway.proxy" and first["type"] == "event" and first["request_id"] == "rid-42"
    assert "ValueError: boom" in second["exception"]


def test_text_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(LoggingConfig())
    logging.getLogger("gateway").info("listening")
    line = capsys.readouterr().err
    assert " gateway INFO listening" in line and not line.startswith("{")
