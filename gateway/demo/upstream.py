"""A small "legacy" app for the demo and the tests: it shows exactly what it received.

Run alone: python -m gateway.demo --port 8000
"""

from __future__ import annotations

import hashlib
import html
import json

from aiohttp import WSMsgType, web

IDENTITY_PREFIXES = ("x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username", "x-forwarded-client-id", "x-amzn-oidc-", "x-gateway-")
_STYLE = (
    "body{font:15px system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#1d2330}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;"
    "text-align:left;vertical-align:top;word-break:break-all}tr.identity{background:#eef6ee}"
    "code{background:#f3f3f3;padding:0 .2em}nav a{margin-right:1em}"
)


def _page(title: str, body: str) -> web.Response:
    return web.Response(
        text=f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style><body>"
        "<nav><a href=/>Headers</a><a href=/ws>WebSocket echo</a><a href=/api/whoami>/api/whoami</a>"
        "<a href='/download?size=10485760'>10 MB download</a><a href=/oauth2/sign_out>Sign out</a></nav>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>",
        content_type="text/html",
    )


def _request_summary(request: web.Request) -> dict[str, object]:
    identity = {k: v for k, v in request.headers.items() if k.lower().startswith(IDENTITY_PREFIXES)}
    return {
        "method": request.method,
        "raw_path": request.raw_path,
        "path": request.path,
        "query_string": request.query_string,
        "host": request.headers.get("Host"),
        "headers": [[k, v] for k, v in request.headers.items()],
        "identity": identity,
    }


async def index(request: web.Request) -> web.Response:
    user = request.headers.get("X-Forwarded-User")
    greeting = (
        f"<p>Signed in as <strong>{html.escape(user)}</strong> ({html.escape(request.headers.get('X-Forwarded-Email', ''))}).</p>"
        if user
        else "<p>No identity headers arrived: nobody is signed in, or the gateway runs without a provider.</p>"
    )
    rows = "".join(
        f"<tr class={'identity' if k.lower().startswith(IDENTITY_PREFIXES) else 'plain'}>"
        f"<th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in request.headers.items()
    )
    body = f"{greeting}<p>Request: <code>{html.escape(request.method)} {html.escape(request.raw_path)}</code></p>"
    body += f"<h2>Headers this app received</h2><table id=headers>{rows}</table>"
    return _page("Legacy app", body)


async def whoami(request: web.Request) -> web.Response:
    return web.json_response(_request_summary(request))


async def echo(request: web.Request) -> web.Response:
    """Any method: what arrived, and the size and SHA-256 of the body, read as a stream."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        digest.update(chunk)
        size += len(chunk)
    summary = _request_summary(request)
    summary.update(
        body_bytes=size,
        body_sha256=digest.hexdigest(),
        content_length=request.headers.get("Content-Length"),
        transfer_encoding=request.headers.get("Transfer-Encoding"),
    )
    return web.json_response(summary)


def _pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


async def download(request: web.Request) -> web.StreamResponse:
    """`size` bytes of a repeating pattern, streamed; `chunked=1` sends no Content-Length."""
    try:
        size = int(request.query.get("size", "1048576"))
    except ValueError:
        raise web.HTTPBadRequest(text="size must be a number") from None
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if request.query.get("chunked") != "1":
        response.content_length = size
    await response.prepare(request)
    block = _pattern(251 * 1024)
    sent = 0
    while sent < size:
        part = block[: min(len(block), size - sent)]
        await response.write(part)
        sent += len(part)
    await response.write_eof()
    return response


async def ws_page(request: web.Request) -> web.Response:
    body = """
<p>Messages you send come back from the app through the gateway.</p>
<form id=f><input id=msg value="hello" aria-label=message> <button>Send</button></form>
<pre id=log aria-live=polite></pre>
<script>
const log = t => document.getElementById('log').textContent += t + '\\n';
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/echo');
ws.onopen = () => log('connected');
ws.onmessage = e => log('< ' + e.data);
ws.onclose = e => log('closed ' + e.code);
document.getElementById('f').onsubmit = e => { e.preventDefault(); const m = document.getElementById('msg').value; ws.send(m); log('> ' + m); };
</script>"""
    return _page("WebSocket echo", body)


async def ws_echo(request: web.Request) -> web.WebSocketResponse:
    """Echoes text and binary; `close:CODE` makes the app close with that code."""
    ws = web.WebSocketResponse(protocols=("echo", "chat"), max_msg_size=0)
    await ws.prepare(request)
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            if message.data.startswith("close:"):
                await ws.close(code=int(message.data[6:]), message=b"app closed")
                break
            if message.data == "headers":
                await ws.send_str(json.dumps(_request_summary(request)))
                continue
            await ws.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


def create_demo_app() -> web.Application:
    app = web.Application(client_max_size=0)
    app.router.add_get("/", index)
    app.router.add_get("/api/whoami", whoami)
    app.router.add_route("*", "/api/echo{tail:.*}", echo)
    app.router.add_get("/download", download)
    app.router.add_get("/ws", ws_page)
    app.router.add_get("/ws/echo", ws_echo)
    return app
