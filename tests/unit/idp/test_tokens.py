"""Token shapes, password rules and password hashing of the local Cognito, without a server."""

from __future__ import annotations

import jwt
import pytest

from gateway.idp.account import password_problem
from gateway.idp.config import parse_idp_config
from gateway.idp.keys import KeyRing
from gateway.idp.store import Store, check_password, hash_password
from gateway.idp.tokens import SignIn, access_token, id_token, machine_access_token, verify_access_token

CONFIG = parse_idp_config({
    "user_pool_id": "us-east-1_Unit1",
    "users": [
        {"username": "alice", "password": "Passw0rd!", "email": "a@example.com", "groups": ["admins"],
         "attributes": {"custom:team": "red", "custom:level": 3}},
        {"username": "bob", "password": "Passw0rd!"},
    ],
})  # fmt: skip


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    return KeyRing.from_config((), 1)


def sign_in(username: str, nonce: str | None = None) -> SignIn:
    user = Store(CONFIG).user(username)
    assert user
    return SignIn(user, "client-1", ("openid", "email"), 1700000000, "origin-1", nonce)


def decode(token: str, keys: KeyRing) -> dict:
    return jwt.decode(token, keys.current.private_key.public_key(), algorithms=["RS256"],
                      options={"verify_aud": False})  # fmt: skip


def test_id_token_claims(keys: KeyRing) -> None:
    access = access_token(CONFIG, keys, sign_in("alice"))
    claims = decode(id_token(CONFIG, keys, sign_in("alice", nonce="n"), access), keys)
    assert claims["iss"] == "http://127.0.0.1:9000/us-east-1_Unit1" and claims["aud"] == "client-1"
    assert claims["token_use"] == "id" and claims["cognito:username"] == "alice" and claims["nonce"] == "n"
    assert claims["cognito:groups"] == ["admins"] and claims["email_verified"] is True
    assert claims["custom:team"] == "red" and claims["custom:level"] == "3"  # Cognito attributes are strings
    assert claims["auth_time"] == 1700000000 and claims["origin_jti"] == "origin-1"
    assert claims["exp"] - claims["iat"] == 3600


def test_access_token_claims(keys: KeyRing) -> None:
    claims = decode(access_token(CONFIG, keys, sign_in("bob")), keys)
    assert set(claims) == {"sub", "iss", "client_id", "origin_jti", "event_id", "token_use", "scope",
                           "auth_time", "exp", "iat", "jti", "username", "version"}  # fmt: skip
    assert claims["scope"] == "openid email" and claims["version"] == 2 and claims["username"] == "bob"


def test_sub_is_a_stable_uuid_per_pool_and_user() -> None:
    assert Store(CONFIG).user("alice").sub == Store(CONFIG).user("ALICE").sub  # type: ignore[union-attr]
    assert len(Store(CONFIG).user("alice").sub) == 36  # type: ignore[union-attr]


def test_verify_access_token_rejects_id_tokens_and_other_keys(keys: KeyRing) -> None:
    access = access_token(CONFIG, keys, sign_in("alice"))
    assert verify_access_token(CONFIG, keys, access)["username"] == "alice"  # type: ignore[index]
    assert verify_access_token(CONFIG, keys, id_token(CONFIG, keys, sign_in("alice"), access)) is None
    assert verify_access_token(CONFIG, KeyRing.from_config((), 1), access) is None
    assert verify_access_token(CONFIG, keys, "not.a.jwt") is None


def test_machine_token(keys: KeyRing) -> None:
    claims = decode(machine_access_token(CONFIG, keys, "m2m", ("api/read",)), keys)
    assert claims["sub"] == claims["client_id"] == "m2m" and claims["scope"] == "api/read"
    assert "username" not in claims and "origin_jti" not in claims


def test_rotation_keeps_old_key_published() -> None:
    ring = KeyRing.from_config((), 1)
    old = ring.current.kid
    new = ring.rotate().kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new, old] and ring.find(old)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Passw0rd!", None),
        ("Pa0!", "Password not long enough"),
        ("passw0rd!", "Password must have uppercase characters"),
        ("PASSW0RD!", "Password must have lowercase characters"),
        ("Password!", "Password must have numeric characters"),
        ("Passw0rdd", "Password must have symbol characters"),
    ],
)
def test_password_policy_uses_cognitos_wording(password: str, problem: str | None) -> None:
    expected = f"Password did not conform with policy: {problem}" if problem else None
    assert password_problem(password) == expected


def test_password_hashes() -> None:
    stored = hash_password("Passw0rd!")
    assert stored.startswith("scrypt$") and "Passw0rd" not in stored
    assert check_password("Passw0rd!", stored) and not check_password("passw0rd!", stored)
    assert check_password("x", "plain$x") and not check_password("y", "plain$x")
