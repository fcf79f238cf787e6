"""Request ids: a well-formed one sent by the client is kept, anything else is replaced."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.ops import request_id


def assigned(sent: str | None) -> str:
    headers = CIMultiDict({request_id.HEADER: sent} if sent is not None else {})
    request = make_mocked_request("GET", "/", headers=headers)
    return request_id.of(request)


@pytest.mark.parametrize("sent", ["2f1c9a0e-5b7d-4c3e-9f00-1a2b3c4d5e6f", "Root=1-5759e988-bd862e3f;Parent=53995c3f", "abc"])
def test_a_well_formed_id_is_kept(sent: str) -> None:
    assert assigned(sent) == sent


@pytest.mark.parametrize("sent", ["", "has space", 'quote"', "a\x00b", "x" * 129, "-leading-dash", "é"])
def test_anything_else_is_replaced(sent: str) -> None:
    value = assigned(sent)
    assert value != sent and re.fullmatch(r"[0-9a-f]{32}", value)


def test_made_ids_differ() -> None:
    assert len({assigned(None) for _ in range(100)}) == 100
