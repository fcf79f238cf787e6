"""Small error responses, JSON or HTML by what the client accepts; never a traceback."""

from __future__ import annotations

import html
import json
from http import HTTPStatus

from aiohttp import web

# On everything the gateway itself renders: no framing (clickjacking of the sign-out confirmation or
# an error page), no scripts, no sniffing. form-action is left open: the sign-out form's POST ends
# in a redirect to the provider, which Chrome would check against form-action.
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # a 404 page is cacheable by default, and may carry a refreshed cookie
}


def wants_json(request: web.BaseRequest, method: str | None = None) -> bool:
    """API-style clients: Accept prefers JSON, an XHR, or a method a browser would not navigate with.

    `method` overrides the request's own (forward-auth judges the original request's).
    """
    accept = request.headers.get("Accept", "")
    if "application/json" in accept and "text/html" not in accept:
        return True
    if request.headers.get("X-Requested-With"):
        return True
    return (method or request.method) not in ("GET", "HEAD")


def error_response(
    request: web.BaseRequest,
    status: int,
    error: str,
    message: str,
    headers: dict[str, str] | None = None,
    json_only: bool = False,
    link: tuple[str, str] | None = None,
) -> web.Response:
    """`error` is a short machine code (`upstream_unreachable`), `message` one human sentence.

    `link` is (url, text) for a way forward on the HTML page, e.g. "Sign in again".
    """
    if json_only or wants_json(request) or "text/html" not in request.headers.get("Accept", "text/html"):
        body = json.dumps({"error": error, "message": message})
        return web.Response(status=status, text=body, content_type="application/json", headers={**PAGE_HEADERS, **(headers or {})})
    title = f"{status} {_reason(status)}"
    body_html = f"<p>{html.escape(message)}</p>" + (f'<p><a href="{html.escape(link[0])}">{html.escape(link[1])}</a></p>' if link else "")
    return html_page(status, title, body_html, headers)


def html_page(status: int, title: str, body_html: str, headers: dict[str, str] | None = None) -> web.Response:
    """A small page of the gateway's own; `body_html` must already be escaped."""
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<body style=\"font:16px system-ui,sans-serif;max-width:36em;margin:4em auto;color:#222\">"
        f"<h1 style=\"font-size:1.4em\">{html.escape(title)}</h1>{body_html}</body></html>"
    )
    return web.Response(status=status, text=page, content_type="text/html", headers={**PAGE_HEADERS, **(headers or {})})


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
