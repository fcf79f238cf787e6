"""Reading a provider's answers with a bound: a huge or never-ending body fails, it is not buffered."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from ..errors import ProviderError

# A token response is a few KB (Cognito's with many groups perhaps 20 KB); a JWKS a few keys.
MAX_RESPONSE_BYTES = 1024 * 1024


class ResponseTooLarge(ProviderError):
    """The provider's answer is bigger than MAX_RESPONSE_BYTES; it was not read further."""


async def read_limited(response: aiohttp.ClientResponse, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """The body, or ResponseTooLarge as soon as it passes `limit` (the connection is then dropped)."""
    declared = response.content_length
    if declared is not None and declared > limit:
        response.close()
        raise ResponseTooLarge(f"answer of {declared} bytes is larger than {limit}")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            response.close()
            raise ResponseTooLarge(f"answer is larger than {limit} bytes")
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """The JSON value of a body; ValueError for anything else (including absurdly deep nesting)."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
