"""What the provider's answers to `doctor`'s requests mean: pure functions from an answer to findings.

Kept apart from the requests (doctor.py) so that every shape of answer a provider gives — Cognito's
redirect to its `/error` page, the local Cognito's 400 page, oidc-provider's HTML or JSON error — is
unit-tested without a server.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import jwt

from .oidc.bodies import MAX_RESPONSE_BYTES

# OAuth error codes an authorize, logout or token endpoint names its refusal with.
_ERROR_CODE = re.compile(
    r"\b(redirect_mismatch|invalid_redirect_uri|invalid_client|unauthorized_client|invalid_request|invalid_scope"
    r"|unsupported_response_type|access_denied|server_error|temporarily_unavailable)\b"
)
_CALLBACK_ERRORS = ("redirect_mismatch", "invalid_redirect_uri")
_KEY_FAMILIES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}  # an algorithm's prefix -> the JWK kty it needs
_HINTS = {
    "invalid_scope": " — provider.scopes asks for a scope the app client does not allow",
    "unauthorized_client": " — enable the authorization code grant for this app client",
}


class Verdict(Enum):
    OK = "ok"
    WARN = "warn"
    SKIP = "skip"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    verdict: Verdict
    check: str  # discovery, jwks, client_id, callback, secret, sign-out, clock, redis
    message: str

    def line(self) -> str:
        return f"{self.verdict.value:<5}{self.check}: {self.message}"


def ok(check: str, message: str) -> Finding:
    return Finding(Verdict.OK, check, message)


def fail(check: str, message: str) -> Finding:
    return Finding(Verdict.FAIL, check, message)


def skip(check: str, message: str) -> Finding:
    return Finding(Verdict.SKIP, check, message)


@dataclass(frozen=True)
class Answer:
    """One answer of the provider, read up to a bound; its redirect is not followed."""

    status: int
    url: str  # what was asked
    location: str | None = None  # the redirect target, absolute
    text: str = ""

    @classmethod
    def of(cls, response: aiohttp.ClientResponse, url: str, body: bytes) -> "Answer":
        location = response.headers.get("Location")
        return cls(response.status, url, urljoin(url, location) if location else None, body.decode("utf-8", "replace"))

    @property
    def redirected(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and self.location is not None

    def json_object(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.text)
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None

    def error_code(self) -> str | None:
        """The OAuth error it names: in a redirect's query, a JSON body, or the text of an error page."""
        if self.redirected:
            error = _query(str(self.location)).get("error")
            if error:
                return error
        body = self.json_object()
        if body is not None and isinstance(body.get("error"), str):
            return str(body["error"])
        match = _ERROR_CODE.search(self.text)
        return match.group(1) if match else None


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _short_path(url: str) -> str:
    """`/login`, `/interaction/…`: where a redirect goes, without the ids and query that vary per request."""
    path = urlsplit(url).path or "/"
    first, _, rest = path[1:].partition("/")
    return f"/{first}/…" if rest else path


def _without_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


async def read_some(response: aiohttp.ClientResponse, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """At most `limit` bytes of the body: enough to read any error page, and never more."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


@dataclass(frozen=True)
class ClockSample:
    host: str
    round_trip: float  # seconds
    skew: float  # the provider's clock minus ours, seconds


def clock_sample(url: str, headers: Mapping[str, str], round_trip: float, now: float | None = None) -> ClockSample | None:
    """The provider's clock from an answer's `Date`, against the middle of our request.

    Date counts whole seconds, so half a second is added; a cache's answer carries the origin's
    Date and its `Age`, which is added back.
    """
    try:
        stamp = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
        age = float(headers.get("Age", "0"))
    except (KeyError, TypeError, ValueError, IndexError, OverflowError):
        return None
    now = time.time() if now is None else now
    return ClockSample(urlsplit(url).netloc, round_trip, stamp + 0.5 + age - (now - round_trip / 2))


def signing_keys(document: dict[str, Any], algorithms: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(algorithms of the usable keys, algorithms of the others) in a JWKS document."""
    usable: list[str] = []
    others: list[str] = []
    entries = document.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        try:
            jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue  # the gateway would ignore it too
        alg = entry.get("alg")
        if isinstance(alg, str):
            (usable if alg in algorithms else others).append(alg)
        elif any(_KEY_FAMILIES.get(name[:2]) == entry["kty"] for name in algorithms):
            usable.append(f"{entry['kty']} key")  # no alg: the token's alg decides, within the key's family
        else:
            others.append(f"{entry['kty']} key")
    return usable, others


def read_authorize(answer: Answer, authorize: str, client_id: str, callback: str) -> list[Finding]:
    """`client_id` and `callback` findings from the answer to the gateway's sign-in request."""
    known = ok("client_id", f"the provider knows client {client_id}")
    if answer.redirected and _without_query(str(answer.location)) == callback:
        error = _query(str(answer.location)).get("error")
        registered = ok("callback", f"{callback} is registered (the provider redirects to it)")
        if error is None:
            return [known, registered]
        description = _query(str(answer.location)).get("error_description", "")
        detail = f"{error}: {description[:200]}" if description else error
        return [known, registered, fail("authorize", f"the provider refuses the sign-in request ({detail}){_HINTS.get(error, '')}")]
    provider_error_page = answer.redirected and _origin(str(answer.location)) == _origin(authorize) and (
        urlsplit(str(answer.location)).path.endswith("/error") or "error" in _query(str(answer.location))
    )
    if answer.status == 200 or (answer.redirected and not provider_error_page):
        where = f"{answer.status} to {_short_path(str(answer.location))}" if answer.redirected else "200"
        return [known, ok("callback", f"the provider accepts redirect_uri {callback} (its sign-in page: {where})")]
    if not (400 <= answer.status < 500 or provider_error_page):
        return [fail("authorize", f"{_without_query(answer.url)} answered {answer.status}"), skip("callback", "the authorize endpoint failed")]
    code = answer.error_code() or f"HTTP {answer.status}"
    if code in _CALLBACK_ERRORS:
        message = f"the provider refuses redirect_uri {callback} for client {client_id} ({code}) — add it to the app client's callback URLs"
        return [known, fail("callback", message)]
    if code in ("invalid_request", "invalid_client", f"HTTP {answer.status}") and "redirect" not in answer.text.lower():
        # Cognito answers an unknown client_id with /error?error=invalid_request: the rest of the request is the gateway's own.
        message = f"the provider does not know client {client_id} ({code}) — check provider.client_id (is it an app client of this provider?)"
        return [fail("client_id", message), skip("callback", "cannot be checked for an unknown client_id")]
    return [fail("authorize", f"the provider refuses the sign-in request ({code}){_HINTS.get(code, '')}"), skip("callback", "see authorize")]


def read_token_error(error: str, status: int, client_id: str, has_secret: bool) -> Finding:
    """The `secret` finding from the token endpoint's refusal of a made-up code."""
    if error == "invalid_grant":
        if has_secret:
            return ok("secret", f"the token endpoint accepts the credentials of client {client_id} (it refused only the made-up code)")
        return ok("secret", f"none set: client {client_id} is a public client (the token endpoint refused only the made-up code)")
    if error == "invalid_client":
        if has_secret:
            return fail("secret", f"the token endpoint refuses the credentials of client {client_id} (invalid_client) — check provider.client_secret")
        return fail("secret", f"the token endpoint refuses client {client_id} without a secret (invalid_client) — "
                              "it is a confidential client: set provider.client_secret")  # fmt: skip
    if error == "unauthorized_client":  # Cognito says so for a redirect_uri it does not know, too
        return fail("secret", f"the token endpoint does not let client {client_id} redeem codes (unauthorized_client) — enable the "
                              "authorization code grant for this app client, and register the callback URL")  # fmt: skip
    return fail("secret", f"the token endpoint answered a made-up code with {error} ({status}), not invalid_grant")


def read_sign_out(answer: Answer, logout: str, client_id: str, back: str, confirmation_page_ok: bool) -> Finding:
    """The `sign-out` finding: does the provider's logout send browsers back to the gateway?

    Cognito redirects to `logout_uri` only when it is registered; otherwise it shows an error or
    its sign-in page. A generic provider may first ask the user to confirm (`confirmation_page_ok`).
    """
    if answer.redirected and answer.location == back:
        return ok("sign-out", f"the provider sends browsers back to {back} after sign-out")
    if answer.status == 200 and confirmation_page_ok:
        return ok("sign-out", f"the provider accepts {back} as the return address (it shows a sign-out page first)")
    if answer.status >= 500 or (answer.status < 400 and not answer.redirected and answer.status != 200):
        return fail("sign-out", f"{_without_query(logout)} answered {answer.status}")
    code = answer.error_code()
    if code is None and answer.redirected:
        detail = f"it redirects to {_without_query(str(answer.location))} instead"
    else:
        detail = code or f"HTTP {answer.status}"
    return fail("sign-out", f"the provider does not send browsers back to {back} for client {client_id} ({detail}) — "
                            "add it to the app client's sign-out URLs")  # fmt: skip


def after_unknown_client(findings: list[Finding]) -> list[Finding]:
    """With an unknown client_id, the secret and sign-out refusals say nothing more: mark them skipped."""
    if not any(f.check == "client_id" and f.verdict is Verdict.FAIL for f in findings):
        return findings
    return [
        skip(f.check, "cannot be judged for an unknown client_id (see client_id)") if f.check in ("secret", "sign-out") and f.verdict is Verdict.FAIL else f
        for f in findings
    ]


def without_password(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)  # redis://:password@host


def redact(line: str, hidden: list[str]) -> str:
    """The line with every secret replaced by ***, longest first (one secret may contain another)."""
    for secret in sorted(hidden, key=len, reverse=True):
        line = line.replace(secret, "***")
    return line
