"""The access log: what a line holds, what it never holds, and that lines are batched."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.ops import access_log
from gateway.ops.access_log import AccessLogger


@pytest.fixture
def logger() -> Iterator[AccessLogger]:
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    yield AccessLogger(logging.getLogger("aiohttp.access"), "")
    access_log.flush()
    logging.getLogger("aiohttp.access").setLevel(logging.NOTSET)


def line_for(logger: AccessLogger, path: str, capsys: pytest.CaptureFixture[str]) -> str:
    logger.log(make_mocked_request("GET", path), web.Response(status=302), 0.0123)
    access_log.flush()
    return capsys.readouterr().err


async def test_a_line_has_the_request_without_its_query(logger: AccessLogger, capsys: pytest.CaptureFixture[str]) -> None:
    line = line_for(logger, "/oauth2/callback?code=SECRET-CODE&state=SECRET-STATE", capsys)
    assert '"GET /oauth2/callback" 302' in line and "12.3ms" in line and " aiohttp.access INFO " in line
    assert "SECRET" not in line and "?" not in line
    assert line.count("\n") == 1


async def test_an_encoded_newline_cannot_forge_a_line(logger: AccessLogger, capsys: pytest.CaptureFixture[str]) -> None:
    line = line_for(logger, "/a%0d%0aINFO%20forged", capsys)
    assert line.count("\n") == 1 and "/a%0d%0aINFO%20forged" in line


async def test_a_path_that_is_not_utf8_is_escaped_never_an_error(logger: AccessLogger, capsys: pytest.CaptureFixture[str]) -> None:
    line = line_for(logger, "/caf\udce9", capsys)  # a raw 0xE9 byte reads as a lone surrogate
    assert "/caf\\udce9" in line


async def test_lines_wait_for_one_write(logger: AccessLogger, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        logger.log(make_mocked_request("GET", "/x"), web.Response(), 0.001)
    assert capsys.readouterr().err == ""  # batched: nothing written per request
    access_log.flush()
    assert capsys.readouterr().err.count('"GET /x"') == 3


async def test_off_at_warning_level(logger: AccessLogger) -> None:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    assert not logger.enabled  # aiohttp then skips the call altogether
