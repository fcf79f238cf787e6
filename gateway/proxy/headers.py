"""Which request and response headers cross the proxy, and the X-Forwarded-* / Forwarded policy."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from multidict import CIMultiDict, CIMultiDictProxy

from ..config import HostHeader
from ..short_cache import cache_short

# RFC 9110 §7.6.1 plus the de-facto ones; never forwarded in either direction.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Proxy-Connection",
    )
)
FORWARDED_HEADERS = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "Forwarded")
_REPLACED_BY_US = frozenset(h.lower() for h in ("Host", *FORWARDED_HEADERS))
# Other names apps read the client's address, scheme or base path from. Only a trusted proxy may
# send them, and only in their own spelling: `X_Forwarded_Host` or `X.Real.IP` is the same variable
# to a CGI-style server, but not a header the gateway would replace.
_FORWARDING_ALIASES = frozenset(
    {
        "x-real-ip", "x-client-ip", "true-client-ip", "x-cluster-client-ip", "x-forwarded-prefix", "x-forwarded-server",
        "x-forwarded-uri", "x-forwarded-method", "x-forwarded-ssl", "x-forwarded-scheme", "x-url-scheme", "front-end-https",
    }
)  # fmt: skip
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


@cache_short(maxsize=4096, max_len=64)  # on every request header: names repeat
def normalized(name: str) -> str:
    """A header name as CGI-style servers read it: every character but letters and digits is one `-`.

    CGI, WSGI, PHP and Rack read `X_Forwarded_User` and `X.Forwarded.User` as `X-Forwarded-User`.
    """
    return _NOT_ALNUM.sub("-", name.lower())


_KEEP, _DROP, _TRUSTED_ONLY = 0, 1, 2


@lru_cache(maxsize=4096)  # names repeat from request to request; only names of at most 64 characters come here
def _incoming_name(name: str) -> int:
    """What happens to a client's request header of this name: kept, dropped, or kept from a trusted proxy only."""
    lower = name.lower()
    if lower in HOP_BY_HOP or lower in _REPLACED_BY_US or lower == "expect":  # aiohttp's server answered 100-continue
        return _DROP
    if lower in _FORWARDING_ALIASES:
        return _TRUSTED_ONLY
    if "_" in lower or "." in lower:  # cheap test first: most names have neither
        spelled = normalized(lower)
        if spelled in _REPLACED_BY_US or spelled in _FORWARDING_ALIASES:
            return _DROP
    return _KEEP

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def connection_listed(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    """Header names a Connection header declares hop-by-hop (`Connection: close, X-Foo`)."""
    listed: set[str] = set()
    for value in headers.getall("Connection", ()):
        listed.update(token.strip().lower() for token in value.split(",") if token.strip())
    return listed


def end_to_end(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """A copy of `headers` without hop-by-hop headers (the upstream's answer, on its way back)."""
    skip = HOP_BY_HOP
    if "Connection" in headers:
        skip = skip | connection_listed(headers)
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in skip)


def is_trusted(peer: str | None, trusted: tuple[Network, ...]) -> bool:
    if not peer or not trusted:
        return False
    return _is_trusted(peer, trusted)


@lru_cache(maxsize=4096)  # asked on every request, mostly about the same few peers; bounded
def _is_trusted(peer: str, trusted: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in trusted)


@dataclass(frozen=True)
class ClientView:
    """How the client reached us: what X-Forwarded-* will say."""

    peer: str
    proto: str
    host: str
    port: str


def _forwarded_node(address: str) -> str:
    # RFC 7239 §6: IPv6 addresses are bracketed and the value quoted.
    return f'"[{address}]"' if ":" in address else address


def _quoted(value: str) -> str:
    """An RFC 7230 quoted-string: a stray quote or backslash must not end the value early."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def forwarding_headers(
    incoming: CIMultiDictProxy[str], client: ClientView, trusted: bool
) -> CIMultiDict[str]:
    """X-Forwarded-For/-Proto/-Host/-Port and Forwarded for the upstream request.

    From a trusted proxy the chain it sent is kept and extended; from anyone else
    every incoming value is replaced, so a client cannot forge its address.
    """
    out: CIMultiDict[str] = CIMultiDict()
    prior_for = ", ".join(incoming.getall("X-Forwarded-For", ())) if trusted else ""
    out["X-Forwarded-For"] = f"{prior_for}, {client.peer}" if prior_for else client.peer
    for name, own in (("X-Forwarded-Proto", client.proto), ("X-Forwarded-Host", client.host), ("X-Forwarded-Port", client.port)):
        out[name] = incoming.get(name, own) if trusted else own
    element = f"for={_forwarded_node(client.peer)};proto={client.proto}"
    if client.host:
        element += f";host={_quoted(client.host)}"
    prior = ", ".join(incoming.getall("Forwarded", ())) if trusted else ""
    out["Forwarded"] = f"{prior}, {element}" if prior else element
    return out


def upstream_request_headers(
    incoming: CIMultiDictProxy[str],
    client: ClientView,
    trusted: bool,
    host_header: HostHeader | str,
    upstream_host: str,
    refused: Callable[[str], bool] = lambda name: False,
) -> CIMultiDict[str]:
    """The headers the upstream receives, before identity headers are added, in one pass over the client's.

    `refused` names more client headers to leave out (identity headers a client may not send).
    """
    listed = connection_listed(incoming) if "Connection" in incoming else ()
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        fate = _incoming_name(name) if len(name) <= 64 else _incoming_name.__wrapped__(name)  # long: not kept
        if fate == _DROP or (fate == _TRUSTED_ONLY and not trusted) or refused(name):
            continue
        if listed and name.lower() in listed:
            continue
        headers.add(name, value)
    headers.extend(forwarding_headers(incoming, client, trusted))
    if host_header is HostHeader.PRESERVE:
        headers["Host"] = incoming.get("Host", upstream_host)
    elif host_header is HostHeader.UPSTREAM:
        headers["Host"] = upstream_host
    else:
        headers["Host"] = host_header
    return headers


def without_cookies(cookie_headers: list[str], drop: Callable[[str], bool]) -> str:
    """One Cookie header value without the pairs whose name `drop` claims; other pairs untouched."""
    kept = []
    for header in cookie_headers:
        for pair in header.split(";"):
            pair = pair.strip()
            if pair and not drop(pair.split("=", 1)[0].strip()):
                kept.append(pair)
    return "; ".join(kept)
