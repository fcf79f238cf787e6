"""The benchmark's upstream: one process answering every GET with the same 1 KB JSON body.

A fixed response keeps the upstream's own cost constant, so differences between rows are the proxies'.
`/ws` is a WebSocket echo, for bench/connections.py.
Usage: python bench/upstream.py --port N
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import WSMsgType, web

BODY_SIZE = 1024
_PREFIX = b'{"hello":"world","padding":"'
BODY = _PREFIX + b"x" * (BODY_SIZE - len(_PREFIX) - 2) + b'"}'
assert len(BODY) == BODY_SIZE


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


async def echo(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(autoping=True, heartbeat=None)
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


async def serve(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_get("/ws", echo)
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)  # logging would dominate a handler this small
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=4096).start()
    try:
        await asyncio.Event().wait()  # until the process is terminated
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop  # the gateway runs on uvloop too: same event loop on both sides
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
