"""WebSockets bridged through the gateway: frames, pings, close codes, subprotocols, refusals."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from tests.fixtures.servers import free_port, gateway_config, start_runner


async def test_text_and_binary_echo(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream))
    async with http.ws_connect(gateway + "/ws/echo") as ws:
        await ws.send_str("hello ✓")
        assert (await ws.receive(timeout=5)).data == "hello ✓"
        blob = bytes(range(256)) * 1000
        await ws.send_bytes(blob)
        message = await ws.receive(timeout=5)
        assert message.type is WSMsgType.BINARY and message.data == blob


async def test_upstream_sees_forwarded_headers_and_subprotocol_is_negotiated(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream))
    async with http.ws_connect(gateway + "/ws/echo?room=1", protocols=("chat", "other")) as ws:
        assert ws.protocol == "chat"
        await ws.send_str("headers")
        seen = json.loads((await ws.receive(timeout=5)).data)
    assert seen["raw_path"] == "/ws/echo?room=1"
    names = {name for name, _ in seen["headers"]}
    assert "X-Forwarded-For" in names


async def test_close_code_from_the_app_reaches_the_client(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream))
    async with http.ws_connect(gateway + "/ws/echo") as ws:
        await ws.send_str("close:4001")
        message = await ws.receive(timeout=5)
        assert message.type is WSMsgType.CLOSE
        assert message.data == 4001 and message.extra == "app closed"


async def _recording_upstream():
    events: list[tuple[str, object]] = []
    closed = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        async for message in ws:
            events.append((message.type.name, message.data))
            if message.type is WSMsgType.PING:
                await ws.pong(message.data)
                await ws.ping(b"from-app")
        events.append(("closed", ws.close_code))
        closed.set()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner, url = await start_runner(app)
    return runner, url, events, closed


async def test_close_code_from_the_client_reaches_the_app(make_gateway, http):
    runner, upstream, events, closed = await _recording_upstream()
    try:
        gateway = await make_gateway(gateway_config(upstream))
        ws = await http.ws_connect(gateway + "/ws")
        await ws.send_str("bye soon")
        await ws.close(code=4002, message=b"client done")
        await asyncio.wait_for(closed.wait(), 5)
        assert ws.close_code == 4002
        assert ("TEXT", "bye soon") in events and events[-1] == ("closed", 4002)
    finally:
        await runner.cleanup()


async def test_ping_and_pong_are_relayed(make_gateway, http):
    runner, upstream, events, _ = await _recording_upstream()
    try:
        gateway = await make_gateway(gateway_config(upstream))
        async with http.ws_connect(gateway + "/ws", autoping=False) as ws:
            await ws.ping(b"are-you-there")
            pong = await ws.receive(timeout=5)
            assert pong.type is WSMsgType.PONG and pong.data == b"are-you-there"
            ping = await ws.receive(timeout=5)
            assert ping.type is WSMsgType.PING and ping.data == b"from-app"
        assert ("PING", b"are-you-there") in events
    finally:
        await runner.cleanup()


async def test_back_pressure_keeps_all_frames_in_order(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream))
    async with http.ws_connect(gateway + "/ws/echo") as ws:
        frame = b"z" * 65536

        async def send() -> None:
            for i in range(300):  # ~20 MB each way
                await ws.send_bytes(i.to_bytes(4, "big") + frame)

        sender = asyncio.create_task(send())
        for i in range(300):
            message = await ws.receive(timeout=10)
            assert int.from_bytes(message.data[:4], "big") == i
        await sender


async def test_app_refusing_the_websocket_is_reported(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream))
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(gateway + "/no-such-socket")
    assert info.value.status == 404


async def test_unreachable_app_is_502_for_websockets(make_gateway, http):
    gateway = await make_gateway(gateway_config(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(gateway + "/ws")
    assert info.value.status == 502


async def test_app_vanishing_closes_the_client_side(make_gateway, http):
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        request.transport.abort()  # gone without a close frame
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner, upstream = await start_runner(app)
    try:
        gateway = await make_gateway(gateway_config(upstream))
        async with http.ws_connect(gateway + "/ws") as ws:
            await ws.send_str("x")
            message = await ws.receive(timeout=5)
            assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
            assert ws.close_code in (1001, 1011)
    finally:
        await runner.cleanup()


async def test_messages_over_the_limit_close_with_1009(make_gateway, demo_upstream, http):
    gateway = await make_gateway(gateway_config(demo_upstream, limits={"max_websocket_message": "64KB"}))
    async with http.ws_connect(gateway + "/ws/echo", max_msg_size=0) as ws:
        await ws.send_bytes(b"x" * 60_000)
        assert len((await ws.receive(timeout=5)).data) == 60_000
        await ws.send_bytes(b"x" * 200_000)
        message = await ws.receive(timeout=5)
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and ws.close_code == 1009
