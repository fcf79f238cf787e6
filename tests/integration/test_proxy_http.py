"""The gateway as a plain reverse proxy, against real upstreams on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json

import aiohttp
import pytest
from aiohttp import web

from tests.fixtures.servers import gateway_config, start_runner


async def whoami(http: aiohttp.ClientSession, url: str, **kwargs) -> dict:
    async with http.get(url, **kwargs) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def header_names(summary: dict) -> list[str]:
    return [name.lower() for name, _ in summary["headers"]]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"])
async def test_every_method_reaches_the_upstream(make_gateway, demo_upstream, http, method):
    gateway = await make_gateway(gateway_config(demo_upstream))
    body = b"payload" if method in ("POST", "PUT", "PATCH") else None
    async with http.request(method, gateway + "/api/echo/x", data=body) as response:
        assert response.status == 200
        seen = await response.json()
    assert seen["method"] == method
    assert seen["body_bytes"] == (len(body) if body else 0)


@pytest.mark.parametrize(
    "raw",
    [
        "/api/echo?a=1&b=%2F&c=%20+x&a=2",
        "/api/echo/%7Euser/%2e%2E/file%3Bx",
        "/api/echo/caf%C3%A9?q=%E2%9C%93",
        "/api/echo/a//b",
        "/api/echo;param=1",
    ],
)
async def test_paths_and_queries_are_forwarded_exactly(make_gateway, demo_upstream, http, raw):
    gateway = await make_gateway(gateway_config(demo_upstream))
    from yarl import URL

    seen = await whoami(http, URL(gateway + raw, encoded=True))
    assert seen["raw_path"] == raw


async def test_hop_by_hop_headers_are_removed_both_ways(make_gateway, raw_upstream, http):
    received: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Secret-Hop\r\nX-Secret-Hop: 1\r\n"
            b"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Kept: yes\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nok"
        )
        await writer.drain()

    gateway = await make_gateway(gateway_config(await raw_upstream(upstream)))
    headers = {
        "Connection": "keep-alive, X-Client-Hop",
        "X-Client-Hop": "1",
        "Keep-Alive": "300",
        "TE": "trailers",
        "Trailer": "X-T",
        "Proxy-Authorization": "Basic eA==",
        "Proxy-Connection": "keep-alive",
        "X-End-To-End": "kept",
    }
    async with http.get(gateway + "/", headers=headers) as response:
        assert await response.read() == b"ok"
        assert response.headers["X-Kept"] == "yes"
        assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
        for name in ("X-Secret-Hop", "Proxy-Authenticate"):
            assert name not in response.headers
    request_head = received[0].decode().lower()
    for name in ("x-client-hop", "keep-alive:", "te:", "trailer:", "proxy-authorization", "proxy-connection"):
        assert name not in request_head, name
    assert "x-end-to-end: kept" in request_head


async def test_request_bodies_chunked_and_with_length(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream))
    payload = bytes(range(256)) * 4000

    async with http.post(gateway + "/api/echo", data=payload) as response:
        seen = await response.json()
    assert seen["content_length"] == str(len(payload)) and seen["transfer_encoding"] is None
    assert seen["body_sha256"] == hashlib.sha256(payload).hexdigest()

    async def chunks():
        for i in range(0, len(payload), 10000):
            yield payload[i : i + 10000]

    async with http.post(gateway + "/api/echo", data=chunks()) as response:
        seen = await response.json()
    assert seen["transfer_encoding"] == "chunked" and seen["content_length"] is None
    assert seen["body_sha256"] == hashlib.sha256(payload).hexdigest()


async def test_response_framing_length_and_chunked(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream))
    async with http.get(gateway + "/download?size=300000") as response:
        assert response.headers["Content-Length"] == "300000"
        assert len(await response.read()) == 300000
    async with http.get(gateway + "/download?size=300000&chunked=1") as response:
        assert response.headers.get("Transfer-Encoding") == "chunked"
        assert len(await response.read()) == 300000


async def test_head_204_304(make_gateway, http):
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/empty":
            return web.Response(status=204, headers={"X-Why": "nothing"})
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(body=b"x" * 1000, headers={"ETag": '"v1"'})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner, upstream = await start_runner(app)
    try:
        gateway = await make_gateway(gateway_config(upstream))
        async with http.head(gateway + "/doc") as response:
            assert response.status == 200 and response.headers["Content-Length"] == "1000"
            assert await response.read() == b""
        async with http.get(gateway + "/empty") as response:
            assert response.status == 204 and response.headers["X-Why"] == "nothing"
            assert "Transfer-Encoding" not in response.headers
        async with http.get(gateway + "/doc", headers={"If-None-Match": '"v1"'}) as response:
            assert response.status == 304 and response.headers["ETag"] == '"v1"'
            assert "Transfer-Encoding" not in response.headers
        # The connection stays usable after bodiless responses.
        async with http.get(gateway + "/doc") as response:
            assert len(await response.read()) == 1000
    finally:
        await runner.cleanup()


async def test_compressed_bodies_pass_through_untouched(make_gateway, http):
    original = b"hello " * 1000

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(original), headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/", handler)
    runner, upstream = await start_runner(app)
    try:
        gateway = await make_gateway(gateway_config(upstream))
        async with http.get(gateway + "/", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await response.read()) == original
    finally:
        await runner.cleanup()


async def test_no_headers_are_invented_and_redirects_are_not_followed(make_gateway, http, raw_upstream):
    heads: list[str] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append((await reader.readuntil(b"\r\n\r\n")).decode())
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    gateway = await make_gateway(gateway_config(await raw_upstream(upstream)))
    async with http.get(gateway + "/", allow_redirects=False, skip_auto_headers=["User-Agent", "Accept", "Accept-Encoding"]) as response:
        assert response.status == 302 and response.headers["Location"] == "/elsewhere"
    lowered = heads[0].lower()
    for invented in ("user-agent", "accept:", "accept-encoding", "content-type", "cookie"):
        assert invented not in lowered, invented


@pytest.mark.parametrize(
    "mode, expected",
    [("preserve", "{gateway_host}"), ("upstream", "{upstream_host}"), ("app.internal", "app.internal")],
)
async def test_host_header_modes(make_gateway, demo_upstream, http, mode, expected):
    config = gateway_config(demo_upstream)
    config["upstreams"][0]["host_header"] = mode
    gateway = await make_gateway(config)
    seen = await whoami(http, gateway + "/api/whoami")
    want = expected.format(gateway_host=gateway.removeprefix("http://"), upstream_host=demo_upstream.removeprefix("http://"))
    assert seen["host"] == want


async def test_an_absolute_form_target_is_refused_even_with_sign_in_off(make_gateway, demo_upstream):
    """`GET http://other-vhost/x`: the upstream would take that authority over the Host the gateway pins."""
    config = gateway_config(demo_upstream)
    config["upstreams"][0]["host_header"] = "app.internal"
    gateway = await make_gateway(config)
    host, port = gateway.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET http://other-vhost/api/whoami HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400") and b"The request target must be a path." in answer


def _headers(summary: dict) -> dict[str, str]:
    return {name: value for name, value in summary["headers"]}


async def test_forwarded_headers_are_replaced_for_untrusted_clients(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream))
    spoofed = {
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Port": "1",
        "Forwarded": "for=6.6.6.6",
    }
    seen = _headers(await whoami(http, gateway + "/api/whoami", headers=spoofed))
    host = gateway.removeprefix("http://")
    assert seen["X-Forwarded-For"] == "127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Host"] == host
    assert seen["X-Forwarded-Port"] == host.rsplit(":", 1)[1]
    assert seen["Forwarded"] == f'for=127.0.0.1;proto=http;host="{host}"'


async def test_forwarded_headers_are_kept_and_extended_for_trusted_proxies(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream, trusted_proxies=["127.0.0.0/8"]))
    incoming = {
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "app.example.com",
        "X-Forwarded-Port": "443",
        "Forwarded": "for=203.0.113.9;proto=https",
    }
    seen = _headers(await whoami(http, gateway + "/api/whoami", headers=incoming))
    assert seen["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "https"
    assert seen["X-Forwarded-Host"] == "app.example.com"
    assert seen["X-Forwarded-Port"] == "443"
    assert seen["Forwarded"].startswith("for=203.0.113.9;proto=https, for=127.0.0.1;proto=http")


async def test_upstreams_are_chosen_by_prefix_and_host(make_gateway, http):
    apps = []
    for name in ("api", "admin-host", "default"):
        app = web.Application()

        async def answer(request: web.Request, name: str = name) -> web.Response:
            return web.json_response({"app": name, "path": request.raw_path})

        app.router.add_route("*", "/{tail:.*}", answer)
        apps.append(await start_runner(app))
    (r1, api), (r2, admin), (r3, default) = apps
    try:
        config = {
            "listen": "127.0.0.1:0",
            "upstreams": [
                {"path": "/api", "url": api},
                {"path": "/", "host": "admin.localhost", "url": admin},
                {"path": "/", "url": default},
            ],
        }
        gateway = await make_gateway(config)
        port = gateway.rsplit(":", 1)[1]
        cases = [
            ("/api", None, "api"),
            ("/api/v1/x", None, "api"),
            ("/apix", None, "default"),
            ("/", f"admin.localhost:{port}", "admin-host"),
            ("/api/v1", f"ADMIN.localhost:{port}", "api"),
            ("/other", None, "default"),
        ]
        for path, host, app_name in cases:
            headers = {"Host": host} if host else {}
            seen = await whoami(http, gateway + path, headers=headers)
            assert seen == {"app": app_name, "path": path}, (path, host)
    finally:
        for runner in (r1, r2, r3):
            await runner.cleanup()


async def test_no_matching_upstream_is_404(make_gateway, demo_upstream, http):
    config = {"listen": "127.0.0.1:0", "upstreams": [{"path": "/only", "url": demo_upstream}]}
    gateway = await make_gateway(config)
    async with http.get(gateway + "/other", headers={"Accept": "application/json"}) as response:
        assert response.status == 404
        assert (await response.json())["error"] == "no_upstream"


async def test_refused_upstream_is_502_json_or_html(make_gateway, http):
    from tests.fixtures.servers import free_port

    gateway = await make_gateway(gateway_config(f"http://127.0.0.1:{free_port()}"))
    async with http.get(gateway + "/x", headers={"Accept": "application/json"}) as response:
        assert response.status == 502
        assert response.content_type == "application/json"
        assert await response.json() == {"error": "upstream_unreachable", "message": "The application could not be reached."}
    async with http.get(gateway + "/x", headers={"Accept": "text/html"}) as response:
        assert response.status == 502 and response.content_type == "text/html"
        text = await response.text()
        assert "502 Bad Gateway" in text and "Traceback" not in text


async def test_slow_upstream_is_504(make_gateway, raw_upstream, http):
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(30)

    config = gateway_config(await raw_upstream(silent))
    config["upstreams"][0]["read_timeout"] = "300ms"
    gateway = await make_gateway(config)
    async with http.get(gateway + "/", headers={"Accept": "application/json"}) as response:
        assert response.status == 504
        assert (await response.json())["error"] == "upstream_timeout"


@pytest.mark.parametrize(
    "reply",
    [b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", b""],
    ids=["garbage", "bad-length", "closed"],
)
async def test_malformed_upstream_is_502(make_gateway, raw_upstream, http, reply):
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()

    gateway = await make_gateway(gateway_config(await raw_upstream(broken)))
    async with http.get(gateway + "/", headers={"Accept": "application/json"}) as response:
        assert response.status == 502
        assert (await response.json())["error"] == "upstream_unreachable"


async def test_upstream_cut_off_mid_body_is_not_a_complete_response(make_gateway, raw_upstream, http):
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        await writer.drain()

    gateway = await make_gateway(gateway_config(await raw_upstream(truncated)))
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(gateway + "/") as response:
            assert response.status == 200
            await response.read()


async def hang_up(gateway: str, request: bytes, read: int) -> None:
    """A client that sends `request`, reads `read` bytes of the answer, then closes the socket."""
    host, port = gateway.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    if read:
        await reader.readexactly(read)
    writer.close()


async def test_a_client_hanging_up_is_not_an_upstream_failure(make_gateway, raw_upstream, caplog):
    """Whether it leaves mid-download or mid-upload, nothing is logged against the application."""
    upstream_saw_the_end = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"POST" in head:  # read the upload until the gateway gives up on it
                while await reader.read(65536):
                    pass
                return
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(2000):  # about 20 s at most: the gateway must stop it long before
                writer.write(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        except asyncio.IncompleteReadError:
            pass  # the gateway may give up on an upload before its headers went out
        finally:
            upstream_saw_the_end.set()

    gateway = await make_gateway(gateway_config(await raw_upstream(endless)))
    caplog.set_level("DEBUG", logger="gateway.proxy")
    await hang_up(gateway, b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", read=50_000)
    await asyncio.wait_for(upstream_saw_the_end.wait(), 5)  # the upstream connection was closed too
    upstream_saw_the_end.clear()
    upload = b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n" + b"y" * 20_000
    await hang_up(gateway, upload, read=0)
    await asyncio.wait_for(upstream_saw_the_end.wait(), 5)
    await asyncio.sleep(0.2)
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.proxy" and r.levelname == "WARNING"]
    assert warnings == []


async def test_request_headers_over_the_limit_get_431(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream, limits={"max_header_size": "4KB"}))
    async with http.get(gateway + "/api/whoami", headers={"X-Big": "a" * 3000}) as response:
        assert response.status == 200
    async with http.get(gateway + "/api/whoami", headers={"X-Big": "a" * 5000, "Accept": "application/json"}) as response:
        assert response.status == 431
        assert (await response.json())["error"] == "headers_too_large"
    many = {f"X-H{i}": "v" * 100 for i in range(50)}
    async with http.get(gateway + "/api/whoami", headers=many) as response:
        assert response.status == 431


async def test_body_over_the_route_limit_gets_413(make_gateway, demo_upstream, http):
    config = {
        "listen": "127.0.0.1:0",
        "upstreams": [{"path": "/api/echo/small", "url": demo_upstream, "max_body_size": "10KB"}, {"path": "/", "url": demo_upstream}],
    }
    gateway = await make_gateway(config)
    big = b"x" * 20000
    async with http.post(gateway + "/api/echo/small", data=big) as response:
        assert response.status == 413
        assert (await response.json())["error"] == "body_too_large"

    async def chunks():
        for _ in range(20):
            yield b"x" * 1000

    async with http.post(gateway + "/api/echo/small", data=chunks()) as response:
        assert response.status == 413
    async with http.post(gateway + "/api/echo/small", data=b"x" * 5000) as response:
        assert response.status == 200 and (await response.json())["body_bytes"] == 5000
    async with http.post(gateway + "/api/echo/other", data=big) as response:
        assert response.status == 200 and (await response.json())["body_bytes"] == 20000


async def test_health_endpoints_are_answered_by_the_gateway(make_gateway, raw_upstream, http):
    calls: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        calls.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nup")
        await writer.drain()

    gateway = await make_gateway(gateway_config(await raw_upstream(upstream)))
    async with http.get(gateway + "/healthz") as response:
        assert response.status == 200 and await response.json() == {"status": "ok"}
    async with http.get(gateway + "/readyz") as response:
        assert response.status == 200 and (await response.json())["status"] == "ready"
    assert calls == []


async def test_upstream_connections_are_pooled(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream))
    peers = set()
    for _ in range(20):
        seen = await whoami(http, gateway + "/api/whoami")
        assert seen["method"] == "GET"
    # The demo app sees one client port per upstream connection: far fewer than requests.
    app = web.Application()
    ports: list[int] = []

    async def record(request: web.Request) -> web.Response:
        ports.append(request.transport.get_extra_info("peername")[1])
        return web.Response(text="ok")

    app.router.add_get("/", record)
    runner, upstream = await start_runner(app)
    try:
        pooled = await make_gateway(gateway_config(upstream))
        for _ in range(20):
            async with http.get(pooled + "/") as response:
                await response.read()
        peers = set(ports)
        assert len(ports) == 20 and len(peers) <= 2
    finally:
        await runner.cleanup()


async def test_error_pages_never_show_internals(make_gateway, http):
    from tests.fixtures.servers import free_port

    gateway = await make_gateway(gateway_config(f"http://127.0.0.1:{free_port()}"))
    async with http.post(gateway + "/x", data=b"{}") as response:
        text = await response.text()
        assert response.status == 502
        body = json.loads(text)
        assert set(body) == {"error", "message"}
        assert "127.0.0.1" not in text


async def test_malformed_host_is_refused_at_the_edge(make_gateway, demo_upstream):
    gateway = await make_gateway(gateway_config(demo_upstream))
    host, port = gateway.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b'GET /api/whoami HTTP/1.1\r\nHost: a", for=6.6.6.6;by="x\r\nAccept: application/json\r\nConnection: close\r\n\r\n')
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400") and b"bad_host" in answer
