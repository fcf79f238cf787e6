"""Hosted UI sign-in and sign-out: `/oauth2/authorize`, `/login`, `/logout`."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from .flow import (
    SESSION_COOKIE,
    complete_sign_in,
    current_session,
    form_response,
    page_error,
    parse_auth_request,
    read_form,
    redirect,
    with_params,
)
from .pages import login_page
from .state import CONFIG, STORE
from .store import check_password

# Cognito's wording; the same text for an unknown user, so usernames cannot be probed.
BAD_CREDENTIALS = "Incorrect username or password."


async def authorize(request: web.Request) -> web.Response:
    """Validate, then sign in silently with a live Hosted UI session or send the browser to /login."""
    auth = parse_auth_request(request)
    found = current_session(request) if auth.prompt != "login" else None
    if found:
        session, user = found
        return complete_sign_in(request, auth, user, auth_time=session.auth_time)
    if auth.prompt == "none":
        params = {"error": "login_required", "error_description": "the user is not signed in", "state": auth.state}
        return redirect(with_params(auth.redirect_uri, params))
    return redirect(f"/login?{auth.query}")


async def login_form(request: web.Request) -> web.Response:
    auth = parse_auth_request(request)
    found = current_session(request) if auth.prompt != "login" else None
    if found:
        return complete_sign_in(request, auth, found[1], auth_time=found[0].auth_time)
    pool = request.app[CONFIG].user_pool_id
    return form_response(request, lambda csrf: login_page(pool, auth.query, csrf))


async def login_submit(request: web.Request) -> web.Response:
    auth = parse_auth_request(request)
    form = await read_form(request)
    username, password = form.get("username", "").strip(), form.get("password", "")
    user = request.app[STORE].user(username) if username else None
    if user is None or not check_password(password, user.password_hash):
        pool = request.app[CONFIG].user_pool_id
        page = lambda csrf: login_page(pool, auth.query, csrf, username=username, error=BAD_CREDENTIALS)  # noqa: E731
        return form_response(request, page, status=400)
    if not user.confirmed:
        # As the Hosted UI does: a correct password of an unconfirmed user leads to the code form.
        return redirect(f"/confirm?{auth.query}&{_username_param(user.username)}")
    return complete_sign_in(request, auth, user)


async def logout(request: web.Request) -> web.Response:
    """Clear the Hosted UI session; then go to a registered sign-out URL or back to sign-in."""
    config, query = request.app[CONFIG], request.query
    client = config.client(query.get("client_id", ""))
    if client is None:
        raise page_error(config, "invalid_request: client_id is missing or is not an app client of this pool.")
    logout_uri = query.get("logout_uri")
    if logout_uri is not None:
        if logout_uri not in client.logout_urls:
            raise page_error(config, "redirect_mismatch: logout_uri is not a sign-out URL of this app client.")
        target = logout_uri
    elif "redirect_uri" in query:
        target = f"/login?{parse_auth_request(request).query}"
    else:
        raise page_error(config, "invalid_request: logout needs logout_uri, or redirect_uri and response_type.")
    request.app[STORE].drop_session(request.cookies.get(SESSION_COOKIE))
    response = redirect(target)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _username_param(username: str) -> str:
    return urlencode({"username": username})
