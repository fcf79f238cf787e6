"""Header policy and routing as pure functions."""

import ipaddress

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.config import HostHeader, UpstreamConfig
from gateway.proxy.headers import ClientView, end_to_end, forwarding_headers, is_trusted, upstream_request_headers
from gateway.hosts import split_host, valid_host
from gateway.proxy.routing import Router

CLIENT = ClientView(peer="192.0.2.7", proto="https", host="app.example.com", port="443")


def proxy(**headers: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(headers))


def test_end_to_end_drops_hop_by_hop_and_connection_listed():
    headers = proxy(Connection="close, X-Listed", **{"X-Listed": "1", "Keep-Alive": "5", "Upgrade": "h2c", "X-Keep": "1"})
    assert list(end_to_end(headers).keys()) == ["X-Keep"]


@pytest.mark.parametrize(
    "peer, trusted",
    [("10.1.2.3", True), ("10.255.0.1", True), ("11.0.0.1", False), ("::1", True), ("not-an-ip", False), (None, False)],
)
def test_trust(peer, trusted):
    networks = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert is_trusted(peer, networks) is trusted


def test_forwarding_for_ipv6_peer_is_bracketed_and_quoted():
    view = ClientView(peer="2001:db8::1", proto="http", host="h", port="80")
    assert forwarding_headers(proxy(), view, trusted=False)["Forwarded"] == 'for="[2001:db8::1]";proto=http;host="h"'


def test_untrusted_client_cannot_extend_the_chain():
    out = forwarding_headers(proxy(**{"X-Forwarded-For": "1.1.1.1", "Forwarded": "for=1.1.1.1"}), CLIENT, trusted=False)
    assert out["X-Forwarded-For"] == "192.0.2.7" and out["Forwarded"].startswith("for=192.0.2.7")


def test_upstream_request_headers_drop_spoofed_forwarding_and_set_host():
    incoming = proxy(Host="app.example.com", **{"X-Forwarded-Proto": "gopher", "X-Other": "1"})
    out = upstream_request_headers(incoming, CLIENT, trusted=False, host_header=HostHeader.UPSTREAM, upstream_host="app:8000")
    assert out["Host"] == "app:8000" and out["X-Forwarded-Proto"] == "https" and out["X-Other"] == "1"
    assert len(out.getall("X-Forwarded-Proto")) == 1


@pytest.mark.parametrize(
    "value, expected",
    [("example.com:8080", ("example.com", "8080")), ("[::1]:80", ("::1", "80")), ("[::1]", ("::1", "")), ("h", ("h", ""))],
)
def test_split_host(value, expected):
    assert split_host(value) == expected


def test_router_prefix_boundaries_and_target_keeps_raw_path():
    router = Router(
        (
            UpstreamConfig(path="/api/", url="http://api:1/base"),
            UpstreamConfig(path="/", url="http://web:2", host="admin.example"),
            UpstreamConfig(path="/", url="http://web:3"),
        )
    )
    assert router.select("x", "/api").upstream.url == "http://api:1/base"
    assert router.select("x", "/api/v1").upstream.url == "http://api:1/base"
    assert router.select("x", "/apiv1").upstream.url == "http://web:3"
    assert router.select("admin.example", "/apiv1").upstream.url == "http://web:2"
    route = router.select("x", "/api/a%2Fb")
    assert str(route.target("/api/a%2Fb?x=%20")) == "http://api:1/base/api/a%2Fb?x=%20"


@pytest.mark.parametrize(
    "host, valid",
    [("example.com", True), ("example.com:8080", True), ("127.0.0.1:80", True), ("[::1]:8080", True), ("a.example.", True), ("", True),
     ('a", for=6.6.6.6;by="x', False), ("a b", False), ("a,b", False), ("example.com:99999999", False), ("[::1", False)],
)
def test_valid_host(host, valid):
    assert valid_host(host) is valid


def test_forwarded_host_is_a_quoted_string():
    view = ClientView(peer="192.0.2.7", proto="http", host='we"ird' + "\\", port="80")  # we"ird\
    expected = 'for=192.0.2.7;proto=http;host="we' + '\\"ird' + "\\\\" + '"'  # host="we\"ird\\"
    assert forwarding_headers(proxy(), view, trusted=False)["Forwarded"] == expected
