"""A Cognito identity pool's two public calls, `GetId` and `GetCredentialsForIdentity`, over plain HTTP.

Both are unsigned in AWS ("a public API; you do not need any credentials"), so no SDK is needed:
an AWS JSON 1.1 `POST /` with `X-Amz-Target`, the user pool's id token in `Logins` under the
provider name `cognito-idp.<region>.amazonaws.com/<pool id>`, which is its issuer without the
scheme. Errors are `{"__type", "message"}`; `IdentityPoolError.kind` says what the gateway makes of one.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

import aiohttp

from ..config import AwsCredentialsConfig
from .bodies import ResponseTooLarge, parse_json, read_limited

TARGET = "AWSCognitoIdentityService."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_ANSWER = 64 * 1024  # a credentials answer is ~2 KB


class Refusal(Enum):
    NOT_AUTHORIZED = "not_authorized"  # the pool will not take this user's token: 403
    MISCONFIGURED = "misconfigured"  # unknown pool or identity, bad parameters: 502, for the operator
    UNAVAILABLE = "unavailable"  # unreachable, slow, throttled, 5xx, nonsense: 503, try again


class IdentityPoolError(Exception):
    """`code` is AWS's `__type` (or a word of ours for transport faults); never a token or a key."""

    def __init__(self, kind: Refusal, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.kind, self.code, self.message = kind, code, message


_NOT_AUTHORIZED = {"NotAuthorizedException"}
_UNAVAILABLE = {"TooManyRequestsException", "InternalErrorException", "LimitExceededException", "ExternalServiceException"}


@dataclass(frozen=True)
class AwsCredentials:
    identity_id: str
    access_key_id: str
    secret_key: str
    session_token: str
    expiration: float  # epoch seconds

    def to_json(self) -> dict[str, Any]:
        """The names (and the epoch-seconds Expiration) of Cognito Identity's own answer."""
        return {
            "IdentityId": self.identity_id,
            "AccessKeyId": self.access_key_id,
            "SecretKey": self.secret_key,
            "SessionToken": self.session_token,
            "Expiration": int(self.expiration) if self.expiration.is_integer() else self.expiration,
        }

    def __repr__(self) -> str:  # never the secret or the token in a log line or a traceback
        return f"AwsCredentials(identity_id={self.identity_id!r}, access_key_id={self.access_key_id[:4]}…, expiration={self.expiration})"


def provider_name(issuer: str) -> str:
    """`https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc` -> `cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc`."""
    return issuer.split("://", 1)[-1].rstrip("/")


class IdentityPoolClient:
    def __init__(self, config: AwsCredentialsConfig, http: Callable[[], aiohttp.ClientSession], timeout: float) -> None:
        self.config = config
        self.http = http  # the provider's shared client session
        self.timeout = timeout

    async def get_id(self, issuer: str, id_token: str) -> str:
        body = {"IdentityPoolId": self.config.identity_pool_id, "Logins": {provider_name(issuer): id_token}}
        answer = await self._call("GetId", body)
        identity_id = answer.get("IdentityId")
        if not isinstance(identity_id, str) or not identity_id:
            raise IdentityPoolError(Refusal.UNAVAILABLE, "bad_answer", "GetId answered no IdentityId")
        return identity_id

    async def get_credentials(self, identity_id: str, issuer: str, id_token: str) -> AwsCredentials:
        body = {"IdentityId": identity_id, "Logins": {provider_name(issuer): id_token}}
        answer = await self._call("GetCredentialsForIdentity", body)
        return _credentials(answer, identity_id)

    async def _call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET + operation, "Accept": "application/json"}
        try:
            async with self.http().post(
                self.config.endpoint, data=json.dumps(body), headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout), allow_redirects=False,
            ) as response:  # fmt: skip
                raw = await read_limited(response, MAX_ANSWER)  # the whole body, however it arrives
                status = response.status
        except ResponseTooLarge:
            raw, status = b"", 0
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise IdentityPoolError(Refusal.UNAVAILABLE, "unreachable", type(exc).__name__) from None
        try:
            answer = parse_json(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise IdentityPoolError(Refusal.UNAVAILABLE, "bad_answer", f"{operation}: HTTP {status}, not a JSON object")
        if status != 200:
            raise _refusal(status, answer)
        return answer


def _refusal(status: int, answer: dict[str, Any]) -> IdentityPoolError:
    # AWS sometimes qualifies the type: "com.amazonaws.cognito.identity#NotAuthorizedException".
    code = str(answer.get("__type", "")).rsplit("#", 1)[-1] or f"HTTP {status}"
    message = str(answer.get("message") or answer.get("Message") or "")[:200]
    if code in _NOT_AUTHORIZED:
        return IdentityPoolError(Refusal.NOT_AUTHORIZED, code, message)
    if code in _UNAVAILABLE or status >= 500:
        return IdentityPoolError(Refusal.UNAVAILABLE, code, message)
    return IdentityPoolError(Refusal.MISCONFIGURED, code, message)


def _credentials(answer: dict[str, Any], identity_id: str) -> AwsCredentials:
    found = answer.get("Credentials")
    found = found if isinstance(found, dict) else {}
    key_id, secret, token = found.get("AccessKeyId"), found.get("SecretKey"), found.get("SessionToken")
    expiration = found.get("Expiration")
    if not all(isinstance(v, str) and v for v in (key_id, secret, token)) or isinstance(expiration, bool):
        raise IdentityPoolError(Refusal.UNAVAILABLE, "bad_answer", "GetCredentialsForIdentity answered no credentials")
    if not isinstance(expiration, (int, float)) or not math.isfinite(expiration):
        raise IdentityPoolError(Refusal.UNAVAILABLE, "bad_answer", "GetCredentialsForIdentity answered no Expiration")
    answered_id = answer.get("IdentityId")
    return AwsCredentials(
        identity_id=answered_id if isinstance(answered_id, str) and answered_id else identity_id,
        access_key_id=str(key_id), secret_key=str(secret), session_token=str(token), expiration=float(expiration),
    )  # fmt: skip
