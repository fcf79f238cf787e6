"""The access log: what a line holds, what it never holds, and that lines are batched."""

from __future__ import annotations

import json

import pytest

from gateway.ops import access_log
from gateway.ops.access_log import REDACTED, Entry, loggable_target


def entry(target: str = "/x", **overrides: object) -> Entry:
    fields: dict[str, object] = dict(
        remote="127.0.0.1", method="GET", target=target, status=302, size=0, seconds=0.0123, request_id="rid-1",
        rule="/admin/*", decision="sign_in", sub="", upstream="",
    )
    fields.update(overrides)
    return Entry(**fields)  # type: ignore[arg-type]


def written(capsys: pytest.CaptureFixture[str]) -> str:
    access_log.flush()
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/oauth2/callback?code=SECRET-CODE&state=SECRET-STATE", f"/oauth2/callback?code={REDACTED}&state={REDACTED}"),
        ("/a?access_token=abc&x_api_key=k&Signature=s&password=p", f"/a?access_token={REDACTED}&x_api_key={REDACTED}&Signature={REDACTED}&password={REDACTED}"),
        ("/a?id=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", f"/a?id={REDACTED}"),  # a JWT, whatever its name
        ("/a?q=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA", f"/a?q={REDACTED}"),  # long and random-looking
        ("/a?page=2&sort=name&q=hello+world", "/a?page=2&sort=name&q=hello+world"),  # ordinary values stay
        ("/a?Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA", f"/a?{REDACTED}"),
        ("/a?user=alice&pass=Summer2024!&pin=4821&pw=hunter2&sid=8f3e2a", f"/a?user=alice&pass={REDACTED}&pin={REDACTED}&pw={REDACTED}&sid={REDACTED}"),
        ("/a?x=1;access_token=sekrit", f"/a?x=1;access_token={REDACTED}"),  # `;` separates pairs for some servers
        ("/a?%63ode=abc&st%61te=xyz", f"/a?%63ode={REDACTED}&st%61te={REDACTED}"),  # names are decoded first
        ("/a?rd=%2Fapp%3Fpass%3Dhunter2", f"/a?rd={REDACTED}"),  # a query nested in a value
        ("/a?email=alice%40example.com", f"/a?email={REDACTED}"),  # personal, not only secret
        ("/a?q=" + "a" * 65, f"/a?q={REDACTED}"),  # long values are not worth the risk
        ("/a?flag&empty=&&page=1", "/a?flag&empty=&&page=1"),
        ("/reports/2024", "/reports/2024"),
    ],
)
def test_query_values_that_look_secret_are_redacted(target: str, expected: str) -> None:
    assert loggable_target(target) == expected


async def test_a_text_line_holds_the_request_and_the_gates_decision(capsys: pytest.CaptureFixture[str]) -> None:
    access_log.write_text(entry(loggable_target("/oauth2/callback?code=SECRET-CODE"), sub="abc-123"), "aiohttp.access")
    line = written(capsys)
    assert '"GET /oauth2/callback?code=REDACTED" 302' in line and "12.3ms" in line and " aiohttp.access INFO " in line
    assert "id=rid-1 rule=/admin/* decision=sign_in sub=abc-123" in line
    assert "SECRET" not in line and line.count("\n") == 1


async def test_a_json_line_is_one_object_with_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    access_log.write_json(entry(upstream="http://app:8000", sub="abc-123", decision="allow", status=200), "aiohttp.access")
    record = json.loads(written(capsys))
    assert record["type"] == "access" and record["request_id"] == "rid-1" and record["status"] == 200
    assert record["duration_ms"] == 12.3 and record["rule"] == "/admin/*" and record["decision"] == "allow"
    assert record["sub"] == "abc-123" and record["upstream"] == "http://app:8000" and record["time"].endswith("Z")


async def test_an_encoded_newline_cannot_forge_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    access_log.write_text(entry("/a%0d%0aINFO%20forged"), "aiohttp.access")
    line = written(capsys)
    assert line.count("\n") == 1 and "/a%0d%0aINFO%20forged" in line


async def test_a_path_that_is_not_utf8_is_escaped_never_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    access_log.write_text(entry("/caf\udce9"), "aiohttp.access")  # a raw 0xE9 byte reads as a lone surrogate
    access_log.write_json(entry("/caf\udce9"), "aiohttp.access")
    text, json_line = written(capsys).splitlines()
    assert "/caf\\udce9" in text and json.loads(json_line)["path"] == "/caf\udce9"


async def test_lines_wait_for_one_write(capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        access_log.write_text(entry(), "aiohttp.access")
    assert capsys.readouterr().err == ""  # batched: nothing written per request
    assert written(capsys).count('"GET /x"') == 3
