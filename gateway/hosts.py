"""Host header parsing shared by routing, forwarding headers and rules."""

from __future__ import annotations

from aiohttp import web


def split_host(host_header: str) -> tuple[str, str]:
    """`example.com:8080` -> (`example.com`, `8080`); `[::1]:80` -> (`::1`, `80`)."""
    if host_header.startswith("["):
        end = host_header.find("]")
        rest = host_header[end + 1 :]
        return host_header[1:end], rest[1:] if rest.startswith(":") else ""
    host, _, port = host_header.partition(":")
    return host, port


def request_host(request: web.BaseRequest) -> str:
    """The Host name without port, lower-cased, for routing."""
    return split_host(request.headers.get("Host", ""))[0].lower()
