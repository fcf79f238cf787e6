"""Choosing the upstream for a request: first matching path prefix (and host, if given) wins."""

from __future__ import annotations

from dataclasses import dataclass, field

from yarl import URL

from ..config import UpstreamConfig


@dataclass(frozen=True)
class Route:
    upstream: UpstreamConfig
    base: URL  # scheme://host:port, plus the URL's own path prefix if it has one
    base_path: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_path", self.base.raw_path.rstrip("/"))  # computed once, not per request

    def matches(self, host: str, path: str) -> bool:
        if self.upstream.host is not None and self.upstream.host != host:
            return False
        prefix = self.upstream.path.rstrip("/")  # "/api" and "/api/" both mean the /api subtree
        return not prefix or path == prefix or path.startswith(prefix + "/")

    def target(self, raw_path_qs: str) -> URL:
        """The upstream URL for a raw (still percent-encoded) path and query, forwarded exactly."""
        return URL(f"{self.base.scheme}://{self.base.raw_authority}{self.target_path(raw_path_qs)}", encoded=True)

    def target_path(self, raw_path_qs: str) -> str:
        """The request target the upstream gets: its URL's own path prefix, then the client's raw path and query."""
        return self.base_path + raw_path_qs

    @property
    def upstream_host(self) -> str:
        return self.base.raw_authority


class Router:
    def __init__(self, upstreams: tuple[UpstreamConfig, ...]) -> None:
        self.routes = tuple(Route(u, URL(u.url)) for u in upstreams)

    def select(self, host: str, path: str) -> Route | None:
        """`host` is the request's host name without port, lower-cased."""
        for route in self.routes:
            if route.matches(host, path):
                return route
        return None
