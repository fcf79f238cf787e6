"""Machine clients: a client_credentials access token is a principal with no user.

Pure code: which verified claims are a machine's (principal.is_machine), what the upstream is
told about one (HeaderRenderer), and which rules let one through (Policy.decide). The same
end to end, against the local Cognito and a real gateway process: tests/integration/test_machine_clients.py.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from multidict import CIMultiDict

from gateway.auth.decide import Decision, Policy
from gateway.auth.identity import CLIENT_ID_HEADER, HeaderRenderer, SpoofedHeaders
from gateway.auth.principal import Principal, is_machine
from gateway.auth.rules import Rules
from gateway.config import IdentityConfig, RuleConfig, Unauthenticated

PUBLIC_URL = "https://gw.example"
GATEWAY_CLIENT = "gateway-client"
NOW = int(time.time())


def machine_claims(client_id: str = "orders-reporter", scope: str = "orders/read") -> dict[str, Any]:
    """Exactly what Cognito puts in a client_credentials access token."""
    return {
        "sub": client_id, "token_use": "access", "scope": scope, "auth_time": NOW,
        "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool", "exp": NOW + 3600, "iat": NOW,
        "version": 2, "jti": "7f0c", "client_id": client_id,
    }  # fmt: skip


def user_claims(**extra: Any) -> dict[str, Any]:
    claims = {**machine_claims("web-app", "openid orders/read"), "sub": "5f1c-uuid", "username": "alice", "cognito:groups": ["admins"]}
    return {**claims, **extra}


def machine() -> Principal:
    return Principal(machine_claims(), "machine-token", NOW + 3600, from_bearer=True, machine=True)


def user_bearer() -> Principal:
    return Principal({**user_claims(), "cognito:username": "alice"}, "user-token", NOW + 3600, from_bearer=True)


def session_user() -> Principal:
    return Principal({"sub": "5f1c-uuid", "cognito:username": "alice", "aud": GATEWAY_CLIENT, "scope": "openid"}, "t", NOW + 3600)


def test_a_machine_is_a_token_about_its_own_client_naming_no_user() -> None:
    assert is_machine(machine_claims())
    assert not is_machine(user_claims())  # every Cognito user access token names its user
    assert not is_machine({**machine_claims(), "username": "orders-reporter"})
    assert not is_machine({**machine_claims(), "cognito:username": "x"})
    assert not is_machine({**machine_claims(), "sub": "someone-else"})
    assert not is_machine({k: v for k, v in machine_claims().items() if k != "client_id"})  # generic providers: a user by sub
    assert not is_machine({**machine_claims(), "client_id": "", "sub": ""})


def test_client_id_is_the_bearer_tokens_only() -> None:
    assert machine().client_id == "orders-reporter" and user_bearer().client_id == "web-app"
    assert session_user().client_id is None  # a session's client is always the gateway's own


def renderer(**identity: Any) -> HeaderRenderer:
    return HeaderRenderer(IdentityConfig(**identity), PUBLIC_URL, GATEWAY_CLIENT)


def test_a_machine_gets_its_client_header_and_no_user_header() -> None:
    mapping = (("X-Forwarded-User", "cognito:username"), ("X-Remote-User", "sub"), ("X-Login", "username"), ("X-Scope", "scope"))
    headers = dict(renderer(headers=mapping).render(machine()))
    assert headers == {"X-Scope": "orders/read", CLIENT_ID_HEADER: "orders-reporter", "Authorization": "Bearer machine-token"}
    user = dict(renderer(headers=mapping).render(user_bearer()))
    assert user["X-Remote-User"] == "5f1c-uuid" and user["X-Forwarded-User"] == "alice" and user[CLIENT_ID_HEADER] == "web-app"
    assert CLIENT_ID_HEADER not in dict(renderer().render(session_user()))


class RecordingSigner:
    def __init__(self) -> None:
        self.assertions: list[dict[str, Any]] = []

    def alb_data(self, claims: dict[str, Any], issuer: str, client_id: str, expires_at: int) -> str:
        raise AssertionError("an ALB never describes a machine: no x-amzn-oidc-data")

    def assertion(self, claims: dict[str, Any], issuer: str, audience: str, lifetime: int = 60) -> str:
        self.assertions.append(claims)
        return "signed"


def test_a_machines_signed_headers_name_the_client_and_no_user() -> None:
    signer = RecordingSigner()
    identity = IdentityConfig(alb_compatible=True, assertion_header="X-Gateway-Assertion")
    headers = dict(HeaderRenderer(identity, PUBLIC_URL, GATEWAY_CLIENT, signer=signer).render(machine()))
    assert headers["x-amzn-oidc-accesstoken"] == "machine-token" and headers["X-Gateway-Assertion"] == "signed"
    assert "x-amzn-oidc-identity" not in headers and "x-amzn-oidc-data" not in headers
    assert signer.assertions == [{"client_id": "orders-reporter", "scope": "orders/read"}]  # no sub: no user to find


@pytest.mark.parametrize("name", [CLIENT_ID_HEADER, "x-forwarded-client-id", "X_Forwarded_Client_Id", "X-FORWARDED-CLIENT-ID"])
def test_no_client_may_send_the_client_header(name: str) -> None:
    headers = CIMultiDict([(name, "admin-service"), ("Accept", "*/*")])
    SpoofedHeaders(IdentityConfig()).remove_from(headers)
    assert list(headers.items()) == [("Accept", "*/*")]


ORDERS = RuleConfig("/orders/**", bearer=True, unauthenticated=Unauthenticated.DENY, scopes=("orders/read",))
WRITE = RuleConfig("/write/**", bearer=True, unauthenticated=Unauthenticated.DENY, scopes=("orders/write",))
OPEN_API = RuleConfig("/api/**", bearer=True, unauthenticated=Unauthenticated.DENY)
ONE_CLIENT = RuleConfig("/reporter/**", bearer=True, unauthenticated=Unauthenticated.DENY, claims=(("client_id", ("orders-reporter",)),))
USERS_ONLY = RuleConfig("/users/**", bearer=True, unauthenticated=Unauthenticated.DENY, scopes=("openid",))
GROUPS = RuleConfig("/admin/**", bearer=True, groups=("admins",))
EMAILS = RuleConfig("/corp/**", bearer=True, email_domains=("example.com",))
USER_CLAIM = RuleConfig("/eng/**", bearer=True, claims=(("custom:department", ("engineering",)),))
PUBLIC = RuleConfig("/public/**", allow_anyone=True)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (ORDERS, Decision.ALLOW),  # the rule's scope
        (OPEN_API, Decision.ALLOW),  # any accepted client's token: require a scope to tell them apart
        (ONE_CLIENT, Decision.ALLOW),  # claims: {client_id: [...]} names the clients allowed
        (PUBLIC, Decision.ALLOW),
        (WRITE, Decision.FORBIDDEN),  # another scope
        (USERS_ONLY, Decision.FORBIDDEN),  # openid: only users' tokens carry it
        (GROUPS, Decision.FORBIDDEN),  # requirements only users can meet
        (EMAILS, Decision.FORBIDDEN),
        (USER_CLAIM, Decision.FORBIDDEN),
    ],
)
def test_a_machine_is_authorized_by_scopes_and_client_never_by_user_requirements(rule: RuleConfig, expected: Decision) -> None:
    policy = Policy(Rules((rule,), RuleConfig(None)), SpoofedHeaders(IdentityConfig()), renderer())
    verdict = policy.decide(rule, machine())
    assert verdict.decision is expected
    if expected is Decision.ALLOW and not rule.allow_anyone:
        assert dict(verdict.headers_to_set)[CLIENT_ID_HEADER] == "orders-reporter"
        assert "X-Forwarded-User" not in dict(verdict.headers_to_set)
