"""Hosted UI account pages: `/signup`, `/confirm`, `/forgotPassword`, `/confirmForgotPassword`.

Codes go to the store's outbox and the log; there is no email. Messages use
Cognito's wording so apps see the same text they will see in production.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from urllib.parse import urlencode

from aiohttp import web

from .flow import complete_sign_in, form_response, parse_auth_request, read_form, redirect
from .pages import confirm_page, forgot_page, reset_page, signup_page
from .state import CONFIG, STORE
from .store import User, hash_password

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USERNAME = re.compile(r"^[\w.+@-]{1,128}$")
_SYMBOLS = set("^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ")
BAD_CODE = "Invalid verification code provided, please try again."


def password_problem(password: str) -> str | None:
    """Cognito's default policy, with its own error texts."""
    prefix = "Password did not conform with policy: "
    rules = [
        (len(password) >= 8, "Password not long enough"),
        (any(c.isupper() for c in password), "Password must have uppercase characters"),
        (any(c.islower() for c in password), "Password must have lowercase characters"),
        (any(c.isdigit() for c in password), "Password must have numeric characters"),
        (any(c in _SYMBOLS for c in password), "Password must have symbol characters"),
    ]
    return next((prefix + text for ok, text in rules if not ok), None)


async def signup_form(request: web.Request) -> web.Response:
    auth, pool = parse_auth_request(request), request.app[CONFIG].user_pool_id
    return form_response(request, lambda csrf: signup_page(pool, auth.query, csrf))


async def signup_submit(request: web.Request) -> web.Response:
    auth, store, pool = parse_auth_request(request), request.app[STORE], request.app[CONFIG].user_pool_id
    form = await read_form(request)
    username, email = form.get("username", "").strip(), form.get("email", "").strip()
    password = form.get("password", "")
    error = (
        ("Username cannot be empty" if not username else None)
        or (None if _USERNAME.match(username) else "Username can contain letters, digits and . _ + @ - only")
        or (None if _EMAIL.match(email) else "Invalid email address format.")
        or password_problem(password)
        or ("User already exists" if store.user(username) else None)
    )
    if error:
        page = lambda csrf: signup_page(pool, auth.query, csrf, username=username, email=email, error=error)  # noqa: E731
        return form_response(request, page, status=400)
    user = _new_user(username, email, password)
    code = store.send_code("confirmation", user)
    store.put_user(replace(user, confirmation_code=code))
    return redirect(f"/confirm?{auth.query}&{urlencode({'username': username})}")


def _new_user(username: str, email: str, password: str) -> User:
    return User(
        username=username, sub=str(uuid.uuid4()), password_hash=hash_password(password), email=email,
        email_verified=False, confirmed=False,
    )  # fmt: skip


async def confirm_form(request: web.Request) -> web.Response:
    auth, pool = parse_auth_request(request), request.app[CONFIG].user_pool_id
    username = request.query.get("username", "")
    return form_response(request, lambda csrf: confirm_page(pool, auth.query, csrf, username=username))


async def confirm_submit(request: web.Request) -> web.Response:
    """A right code confirms the account and signs the user in, as the Hosted UI does."""
    auth, store, pool = parse_auth_request(request), request.app[STORE], request.app[CONFIG].user_pool_id
    form = await read_form(request)
    username, code = form.get("username", "").strip(), form.get("code", "").strip()
    user = store.user(username) if username else None
    if user is None:
        error = "Username/client id combination not found."
    elif user.confirmed:
        error = "User cannot be confirmed. Current status is CONFIRMED"
    elif not code or code != user.confirmation_code:
        error = BAD_CODE
    else:
        confirmed = replace(user, confirmed=True, email_verified=True, confirmation_code=None)
        store.put_user(confirmed)
        return complete_sign_in(request, auth, confirmed)
    page = lambda csrf: confirm_page(pool, auth.query, csrf, username=username, error=error)  # noqa: E731
    return form_response(request, page, status=400)


async def forgot_form(request: web.Request) -> web.Response:
    auth, pool = parse_auth_request(request), request.app[CONFIG].user_pool_id
    return form_response(request, lambda csrf: forgot_page(pool, auth.query, csrf))


async def forgot_submit(request: web.Request) -> web.Response:
    """Always continue to the code form: whether the user exists is not revealed."""
    auth, store = parse_auth_request(request), request.app[STORE]
    form = await read_form(request)
    username = form.get("username", "").strip()
    user = store.user(username) if username else None
    if user is not None and user.confirmed:
        store.put_user(replace(user, reset_code=store.send_code("forgot_password", user)))
    return redirect(f"/confirmForgotPassword?{auth.query}&{urlencode({'username': username})}")


async def reset_form(request: web.Request) -> web.Response:
    auth, pool = parse_auth_request(request), request.app[CONFIG].user_pool_id
    username = request.query.get("username", "")
    return form_response(request, lambda csrf: reset_page(pool, auth.query, csrf, username=username))


async def reset_submit(request: web.Request) -> web.Response:
    auth, store, pool = parse_auth_request(request), request.app[STORE], request.app[CONFIG].user_pool_id
    form = await read_form(request)
    username, code = form.get("username", "").strip(), form.get("code", "").strip()
    password = form.get("password", "")
    user = store.user(username) if username else None
    error: str | None
    if user is None or not user.reset_code or code != user.reset_code:
        error = BAD_CODE
    else:
        error = password_problem(password)
    if error or user is None:
        page = lambda csrf: reset_page(pool, auth.query, csrf, username=username, error=error)  # noqa: E731
        return form_response(request, page, status=400)
    store.put_user(replace(user, password_hash=hash_password(password), reset_code=None))
    return redirect(f"/login?{auth.query}")
