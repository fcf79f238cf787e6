"""Host header parsing shared by routing, forwarding headers and rules.

Every request asks about its Host three times (edge check, rules and routing, X-Forwarded-Port);
the answers are cached per distinct value, so a Host is parsed once, not once per question.
`split_host` and `host_name` are only asked about Hosts that passed `valid_host`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from aiohttp import web

# host[:port]: a DNS name or IPv4 address, or a bracketed IPv6 address. Anything else (quotes,
# commas, spaces…) would be pasted into Forwarded / X-Forwarded-Host and the upstream's own URLs.
# Labels are never empty: `admin.local..` or `.admin.local` would not equal a rule's `admin.local`
# while resolving to the same site; one trailing dot (the root) is allowed and dropped.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-_]*[A-Za-z0-9])?"
_HOST = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?$")


MAX_HOST = 253 + 6  # a DNS name, a colon and a port: anything longer is not a host


def valid_host(host_header: str) -> bool:
    """An empty Host (HTTP/1.0) is allowed; otherwise it must be a plain host[:port]."""
    return not host_header or (len(host_header) <= MAX_HOST and _valid_host(host_header))


@lru_cache(maxsize=1024)  # bounded: a client sending endless distinct Hosts only churns it
def _valid_host(host_header: str) -> bool:
    return bool(_HOST.match(host_header))


@lru_cache(maxsize=1024)  # valid Hosts only (at most MAX_HOST characters): bounded in size too
def split_host(host_header: str) -> tuple[str, str]:
    """`example.com:8080` -> (`example.com`, `8080`); `[::1]:80` -> (`::1`, `80`)."""
    if host_header.startswith("["):
        end = host_header.find("]")
        rest = host_header[end + 1 :]
        return host_header[1:end], rest[1:] if rest.startswith(":") else ""
    host, _, port = host_header.partition(":")
    return host, port


@lru_cache(maxsize=1024)  # valid Hosts only (at most MAX_HOST characters): bounded in size too
def host_name(host_header: str) -> str:
    """The name rules and routes match: without port, lower-cased, without the root's trailing dot.

    Only for a header that passed `valid_host`: then every spelling of one name gives one result.
    """
    return split_host(host_header)[0].lower().removesuffix(".")


def request_host(request: web.BaseRequest) -> str:
    return host_name(request.headers.get("Host", ""))
