"""Cognito Identity's JSON API for the local Cognito's `identity_pools`: `GetId`, `GetCredentialsForIdentity`.

AWS serves it on its own host (`cognito-identity.<region>.amazonaws.com`) as AWS JSON 1.1: a
`POST /` whose `X-Amz-Target` names the operation, errors as HTTP 400 with `{"__type", "message"}`.
Here it is `POST /` on the local Cognito's origin, so AWS's SDKs work with `endpoint_url` set to it.

A `Logins` entry is this user pool's id token under a provider name: the issuer without its scheme
(`127.0.0.1:9000/us-east-1_LocalPool`, what the gateway sends), or the name real Cognito uses,
`cognito-idp.<region>.amazonaws.com/<user_pool_id>`, so code written for AWS works unchanged.
Identity ids are derived from (identity pool, user sub), so they are stable across restarts without
being stored. The credentials are random, well-formed and good for nothing: there is no AWS behind them.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web

from .config import IdentityPoolConfig, IdpConfig
from .keys import KeyRing
from .state import CONFIG, HOOKS, KEYS

TARGET_PREFIX = "AWSCognitoIdentityService."
# The patterns of AWS's API model: a pool id or an identity id is <region>:<guid>.
_ID_PATTERN = re.compile(r"^[\w-]+:[0-9a-f-]+$")
_ALNUM_UPPER = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
_IDENTITY_NAMESPACE = uuid.UUID("6f1c1c8e-6b4e-4b53-9f0a-3c1de2a1c0a7")  # ours: ids are uuid5 in it


class IdentityError(Exception):
    """An AWS JSON error: `{"__type": kind, "message": message}` with HTTP 400."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message

    def response(self) -> web.Response:
        return _answer({"__type": self.kind, "message": self.message}, 400)


def _invalid(field: str, value: Any, constraint: str) -> IdentityError:
    shown = value if isinstance(value, str) and len(value) <= 64 else "..."
    message = f"1 validation error detected: Value '{shown}' at '{field}' failed to satisfy constraint: {constraint}"
    return IdentityError("InvalidParameterException", message)


@dataclass(frozen=True)
class Login:
    """A verified `Logins` entry: whose id token it is, and for which app client."""

    sub: str
    client_id: str


def provider_names(config: IdpConfig) -> frozenset[str]:
    """The `Logins` keys this user pool answers to."""
    issuer = config.issuer_url
    return frozenset({issuer.split("://", 1)[-1], f"cognito-idp.{config.region}.amazonaws.com/{config.user_pool_id}"})


def identity_id(pool: IdentityPoolConfig, sub: str) -> str:
    """`<region>:<uuid>`, the same for one user in one pool every time."""
    name = pool.identity_pool_id + "\0" + sub
    return f"{pool.region}:{uuid.uuid5(_IDENTITY_NAMESPACE, name)}"


def new_credentials(lifetime: int, now: float) -> dict[str, Any]:
    """STS-shaped temporary credentials: ASIA key id, 40-character secret, a long session token."""
    return {
        "AccessKeyId": "ASIA" + "".join(secrets.choice(_ALNUM_UPPER) for _ in range(16)),
        "SecretKey": "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40)),
        "SessionToken": base64.b64encode(secrets.token_bytes(768)).decode(),
        "Expiration": int(now) + lifetime,
    }


def verify_login(config: IdpConfig, keys: KeyRing, pool: IdentityPoolConfig, logins: Any) -> Login:
    """The one `Logins` entry of this pool's user pool, verified as Cognito Identity would."""
    if logins is None or logins == {}:
        raise IdentityError("NotAuthorizedException", "Unauthenticated access is not supported for this identity pool.")
    if not isinstance(logins, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in logins.items()):
        raise _invalid("logins", None, "Member must be a map of provider names to tokens")
    names = provider_names(config)
    ours = [(name, token) for name, token in logins.items() if name in names]
    if len(ours) != 1 or len(logins) != 1:
        raise IdentityError("NotAuthorizedException", "Token is not from a supported provider of this identity pool.")
    claims = _verified_claims(config, keys, ours[0][1])
    allowed = pool.client_ids or tuple(c.client_id for c in config.clients)
    if claims.get("aud") not in allowed:
        raise IdentityError("NotAuthorizedException", "Invalid login token. Incorrect token audience.")
    return Login(sub=str(claims["sub"]), client_id=str(claims["aud"]))


def _verified_claims(config: IdpConfig, keys: KeyRing, token: str) -> dict[str, Any]:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise IdentityError("NotAuthorizedException", "Invalid login token. Not a valid OpenId Connect identity token.") from None
    key = keys.find(kid) if isinstance(kid, str) else None
    if key is None:
        raise IdentityError("NotAuthorizedException", "Invalid login token. Couldn't verify signed token.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key.private_key.public_key(), algorithms=["RS256"],
            options={"require": ["exp", "iat", "iss", "sub", "aud"], "verify_aud": False, "verify_iss": False},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise IdentityError("NotAuthorizedException", "Invalid login token. Token expired.") from None
    except jwt.PyJWTError:
        raise IdentityError("NotAuthorizedException", "Invalid login token. Couldn't verify signed token.") from None
    if claims.get("iss") != config.issuer_url:
        raise IdentityError("NotAuthorizedException", "Invalid login token. Issuer doesn't match providerName")
    if claims.get("token_use") != "id":
        raise IdentityError("NotAuthorizedException", "Invalid login token. Not a valid OpenId Connect identity token.")
    return claims


def _pool(config: IdpConfig, pool_id: Any) -> IdentityPoolConfig:
    if not isinstance(pool_id, str) or not 1 <= len(pool_id) <= 55 or not _ID_PATTERN.match(pool_id):
        raise _invalid("identityPoolId", pool_id, "Member must satisfy regular expression pattern: [\\w-]+:[0-9a-f-]+")
    pool = config.identity_pool(pool_id)
    if pool is None:
        raise IdentityError("ResourceNotFoundException", f"IdentityPool '{pool_id}' not found.")
    return pool


def get_id(config: IdpConfig, keys: KeyRing, body: dict[str, Any]) -> dict[str, Any]:
    account = body.get("AccountId")
    if account is not None and (not isinstance(account, str) or not re.fullmatch(r"\d{1,15}", account)):
        raise _invalid("accountId", account, "Member must satisfy regular expression pattern: \\d+")
    pool = _pool(config, body.get("IdentityPoolId"))
    login = verify_login(config, keys, pool, body.get("Logins"))
    return {"IdentityId": identity_id(pool, login.sub)}


def get_credentials(config: IdpConfig, keys: KeyRing, body: dict[str, Any]) -> dict[str, Any]:
    wanted = body.get("IdentityId")
    if not isinstance(wanted, str) or not 1 <= len(wanted) <= 55 or not _ID_PATTERN.match(wanted):
        raise _invalid("identityId", wanted, "Member must satisfy regular expression pattern: [\\w-]+:[0-9a-f-]+")
    pools = [p for p in config.identity_pools if p.region == wanted.split(":", 1)[0]]
    if not pools:
        raise IdentityError("ResourceNotFoundException", f"Identity '{wanted}' not found.")
    refusal: IdentityError | None = None
    for pool in pools:  # the identity id names no pool: the one whose user it derives from is it
        try:
            login = verify_login(config, keys, pool, body.get("Logins"))
        except IdentityError as exc:
            refusal = refusal or exc
            continue
        if identity_id(pool, login.sub) == wanted:
            credentials = new_credentials(pool.credentials_lifetime, time.time())
            return {"IdentityId": wanted, "Credentials": credentials}
        refusal = refusal or IdentityError(
            "NotAuthorizedException", "Logins don't match. Please include at least one valid login for this identity or identity pool."
        )
    raise refusal or IdentityError("ResourceNotFoundException", f"Identity '{wanted}' not found.")


OPERATIONS = {"GetId": get_id, "GetCredentialsForIdentity": get_credentials}


async def handle(request: web.Request) -> web.Response:
    """`POST /` with `X-Amz-Target: AWSCognitoIdentityService.<operation>`."""
    target = request.headers.get("X-Amz-Target", "")
    operation = OPERATIONS.get(target.removeprefix(TARGET_PREFIX)) if target.startswith(TARGET_PREFIX) else None
    if operation is None:
        return IdentityError("UnknownOperationException", "").response()
    request.app[HOOKS].identity_calls[target.removeprefix(TARGET_PREFIX)] += 1
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return IdentityError("SerializationException", "The request body is not JSON.").response()
    if not isinstance(body, dict):
        return IdentityError("SerializationException", "The request body must be a JSON object.").response()
    try:
        return _answer(operation(request.app[CONFIG], request.app[KEYS], body), 200)
    except IdentityError as exc:
        return exc.response()


def _answer(body: dict[str, Any], status: int) -> web.Response:
    headers = {"x-amzn-RequestId": str(uuid.uuid4()), "Cache-Control": "no-store"}
    return web.Response(status=status, text=json.dumps(body), content_type="application/x-amz-json-1.1", headers=headers)


def add_identity_routes(app: web.Application) -> None:
    app.router.add_post("/", handle)
