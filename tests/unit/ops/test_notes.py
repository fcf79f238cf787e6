"""The request's notes: the id goes back to the client on every response the gateway starts."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.ops.notes import NOTES, Notes, on_prepare


async def test_the_request_id_goes_back_to_the_client() -> None:
    request = make_mocked_request("GET", "/")
    request[NOTES] = Notes(0.0, "rid-1")
    response = web.Response(headers={"X-Request-Id": "the-apps-own"})
    await on_prepare(request, response)
    assert response.headers.getall("X-Request-Id") == ["rid-1"]


async def test_a_request_without_notes_gets_no_id() -> None:
    response = web.Response()
    await on_prepare(make_mocked_request("GET", "/"), response)
    assert "X-Request-Id" not in response.headers
