"""The floor for any aiohttp proxy: the smallest streaming reverse proxy, for the "bare aiohttp proxy" row.

No header policy, no routing, no logging: whatever the gateway costs beyond this row is its own work.
Usage: python bench/bare_proxy.py --port N --upstream http://127.0.0.1:M
"""

from __future__ import annotations

import argparse
import asyncio
from typing import AsyncIterator

from aiohttp import ClientSession, TCPConnector, web

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"})


def create_app(upstream: str) -> web.Application:
    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        app["client"] = ClientSession(connector=TCPConnector(limit=0), auto_decompress=False)
        yield
        await app["client"].close()

    async def proxy(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        data = request.content if request.body_exists else None
        async with request.app["client"].request(
            request.method, upstream + request.raw_path, headers=headers, data=data, allow_redirects=False
        ) as upstream_response:
            response = web.StreamResponse(status=upstream_response.status)
            for name, value in upstream_response.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    response.headers.add(name, value)
            if upstream_response.content_length is not None:
                response.content_length = upstream_response.content_length
            await response.prepare(request)
            async for chunk in upstream_response.content.iter_chunked(64 * 1024):
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


async def serve(port: int, upstream: str) -> None:
    runner = web.AppRunner(create_app(upstream.rstrip("/")), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    try:
        await asyncio.Event().wait()  # until the process is terminated
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port, args.upstream))
    else:
        uvloop.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
