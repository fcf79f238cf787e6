"""The Hosted UI's HTML: plain, accessible forms that any scripted browser can fill.

Every form posts back to its own path with the OAuth parameters kept in the
query string, as Cognito's Hosted UI does; `_csrf` is the only hidden field.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

_CSS = """
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;
background:#f2f3f3;color:#16191f}main{max-width:24rem;margin:4rem auto;background:#fff;padding:2rem;
border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15)}h1{font-size:1.4rem;margin:0 0 .25rem}
.pool{color:#545b64;font-size:.85rem;margin:0 0 1.5rem}label{display:block;font-weight:600;margin:1rem 0 .25rem}
input{width:100%;padding:.6rem;border:1px solid #879596;border-radius:4px;font:inherit}
input:focus{outline:3px solid #0073bb;outline-offset:1px}
button{width:100%;margin-top:1.5rem;padding:.7rem;border:0;border-radius:4px;background:#ec7211;
color:#fff;font:inherit;font-weight:600;cursor:pointer}button:hover{background:#eb5f07}
.error{background:#fde8e8;border-left:4px solid #d13212;padding:.6rem .8rem;margin:0 0 1rem}
.notice{background:#e6f2f8;border-left:4px solid #0073bb;padding:.6rem .8rem;margin:0 0 1rem}
nav{margin-top:1.25rem;font-size:.9rem}nav a{color:#0073bb;display:block;margin:.3rem 0}
"""

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",  # the sign-in form must never be framed (clickjacking)
    # No form-action: browsers apply it to the redirect that follows a form post too, and a
    # successful sign-in must redirect to the client's callback on another origin.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def html_response(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", headers=_SECURITY_HEADERS)


def _page(title: str, pool: str, content: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f'<body><main><h1>{escape(title)}</h1><p class="pool">{escape(pool)}</p>{content}</main></body></html>\n'
    )


def _messages(error: str | None, notice: str | None) -> str:
    parts = []
    if error:
        parts.append(f'<p class="error" role="alert" id="error">{escape(error)}</p>')
    if notice:
        parts.append(f'<p class="notice" role="status">{escape(notice)}</p>')
    return "".join(parts)


def _field(name: str, label: str, kind: str, autocomplete: str, value: str = "", extra: str = "") -> str:
    return (
        f'<label for="{name}">{escape(label)}</label>'
        f'<input id="{name}" name="{name}" type="{kind}" autocomplete="{autocomplete}" '
        f'value="{escape(value)}" required {extra}>'
    )


def _form(action: str, query: str, csrf: str, fields: str, button: str, error: str | None) -> str:
    described = ' aria-describedby="error"' if error else ""
    return (
        f'<form method="post" action="{escape(action + ("?" + query if query else ""))}"{described}>'
        f'<input type="hidden" name="_csrf" value="{escape(csrf)}">{fields}'
        f'<button type="submit">{escape(button)}</button></form>'
    )


def _link(path: str, query: str, text: str) -> str:
    return f'<a href="{escape(path + "?" + query)}">{escape(text)}</a>'


def login_page(pool: str, query: str, csrf: str, *, username: str = "", error: str | None = None,
               notice: str | None = None) -> str:  # fmt: skip
    fields = _field("username", "Username", "text", "username", username, "autofocus")
    fields += _field("password", "Password", "password", "current-password")
    nav = f"<nav>{_link('/forgotPassword', query, 'Forgot your password?')}"
    nav += f"{_link('/signup', query, 'Need an account? Sign up')}</nav>"
    form = _form("/login", query, csrf, fields, "Sign in", error)
    return _page("Sign in with your username and password", pool, _messages(error, notice) + form + nav)


def signup_page(pool: str, query: str, csrf: str, *, username: str = "", email: str = "",
                error: str | None = None) -> str:  # fmt: skip
    fields = _field("username", "Username", "text", "username", username, "autofocus")
    fields += _field("email", "Email", "email", "email", email)
    fields += _field("password", "Password", "password", "new-password")
    fields += '<p class="pool">At least 8 characters with upper and lower case letters, a number and a symbol.</p>'
    nav = f"<nav>{_link('/login', query, 'Already have an account? Sign in')}</nav>"
    return _page("Sign up with a new account", pool, _messages(error, None) + _form("/signup", query, csrf, fields, "Sign up", error) + nav)


def confirm_page(pool: str, query: str, csrf: str, *, username: str, error: str | None = None) -> str:
    notice = "We have sent a code by email. Enter it below to confirm your account."
    fields = _field("username", "Username", "text", "username", username)
    fields += _field("code", "Verification code", "text", "one-time-code", "", 'inputmode="numeric" autofocus')
    form = _form("/confirm", query, csrf, fields, "Confirm account", error)
    return _page("Confirm your account", pool, _messages(error, notice) + form)


def forgot_page(pool: str, query: str, csrf: str, *, error: str | None = None) -> str:
    notice = "Enter your username below and we will send a message to reset your password."
    fields = _field("username", "Username", "text", "username", "", "autofocus")
    form = _form("/forgotPassword", query, csrf, fields, "Reset my password", error)
    return _page("Forgot your password?", pool, _messages(error, notice) + form)


def reset_page(pool: str, query: str, csrf: str, *, username: str, error: str | None = None) -> str:
    notice = "We have sent a password reset code by email. Enter it below to reset your password."
    fields = _field("username", "Username", "text", "username", username)
    fields += _field("code", "Code", "text", "one-time-code", "", 'inputmode="numeric" autofocus')
    fields += _field("password", "New password", "password", "new-password")
    form = _form("/confirmForgotPassword", query, csrf, fields, "Change password", error)
    return _page("Reset your password", pool, _messages(error, notice) + form)


def error_page(pool: str, detail: str) -> str:
    body = _messages(detail, None) + "<p>Please contact the application's administrator.</p>"
    return _page("An error was encountered with the requested page.", pool, body)
