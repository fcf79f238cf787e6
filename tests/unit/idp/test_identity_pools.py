"""The local Cognito's identity pools: config problems, identity ids, credentials, login checks."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import jwt
import pytest

from gateway.errors import ConfigError
from gateway.idp.config import parse_idp_config
from gateway.idp.identity_pools import IdentityError, get_credentials, get_id, identity_id, new_credentials, provider_names
from gateway.idp.keys import KeyRing, generate_key

POOL = "us-east-1:0a1b2c3d-0000-4000-8000-000000000001"
BASE: dict[str, Any] = {"user_pool_id": "us-east-1_Unit", "clients": [{"client_id": "web"}, {"client_id": "other"}]}


def config(**overrides: Any) -> Any:
    return parse_idp_config({**BASE, "identity_pools": [{"identity_pool_id": POOL}], **overrides})


def problems(pools: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_idp_config({**BASE, "identity_pools": pools})
    return caught.value.problems


def test_config_problems_name_their_keys():
    assert problems("x") == ["identity_pools: must be a list of {identity_pool_id, client_ids, credentials_lifetime}"]
    assert problems([{}]) == ["identity_pools[0].identity_pool_id: is required"]
    assert problems([{"identity_pool_id": "us-east-1_Pool"}])[0].startswith("identity_pools[0].identity_pool_id: must look like <region>:<uuid>")
    assert problems([{"identity_pool_id": POOL}, {"identity_pool_id": POOL}]) == [f"identity_pools[1].identity_pool_id: duplicate identity pool id {POOL!r}"]
    assert problems([{"identity_pool_id": POOL, "client_ids": ["nobody"], "roles": {}}]) == [
        "identity_pools[0].roles: unknown key",
        "identity_pools[0].client_ids: 'nobody' is not a client of this user pool",
    ]
    assert problems([{"identity_pool_id": POOL, "credentials_lifetime": 0}]) == [
        "identity_pools[0].credentials_lifetime: must be at least 1 and at most 43200"
    ]


def test_config_defaults():
    idp = config()
    pool = idp.identity_pools[0]
    assert (pool.region, pool.client_ids, pool.credentials_lifetime) == ("us-east-1", (), 3600)
    assert idp.identity_pool(POOL) is pool and idp.identity_pool("us-east-1:00") is None


def test_provider_names_are_the_issuer_without_scheme_and_cognitos_form():
    names = provider_names(config(listen="127.0.0.1:9001"))
    assert names == {"127.0.0.1:9001/us-east-1_Unit", "cognito-idp.us-east-1.amazonaws.com/us-east-1_Unit"}


def test_identity_ids_are_stable_per_pool_and_user():
    pool = config().identity_pools[0]
    other = config(identity_pools=[{"identity_pool_id": "eu-west-1:0a1b2c3d-0000-4000-8000-000000000002"}]).identity_pools[0]
    assert identity_id(pool, "alice") == identity_id(pool, "alice") != identity_id(pool, "bob")
    assert identity_id(other, "alice").startswith("eu-west-1:") and identity_id(other, "alice")[10:] != identity_id(pool, "alice")[10:]
    assert re.fullmatch(r"us-east-1:[0-9a-f-]{36}", identity_id(pool, "alice"))


def test_credentials_are_well_formed_and_random():
    one, two = new_credentials(3600, 1000.0), new_credentials(60, 1000.0)
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", one["AccessKeyId"]) and re.fullmatch(r"[A-Za-z0-9+/]{40}", one["SecretKey"])
    assert one["Expiration"] == 4600 and two["Expiration"] == 1060
    assert one["SecretKey"] != two["SecretKey"] and one["SessionToken"] != two["SessionToken"]


def id_token(keys: KeyRing, issuer: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "s-1", "aud": "web", "iss": issuer, "token_use": "id", "iat": now, "exp": now + 60, **claims}
    return jwt.encode(body, keys.current.private_key, algorithm="RS256", headers={"kid": keys.current.kid})


def test_get_id_then_credentials_and_the_refusals():
    idp, keys = config(), KeyRing([generate_key()])
    logins = {"cognito-idp.us-east-1.amazonaws.com/us-east-1_Unit": id_token(keys, idp.issuer_url)}
    identity = get_id(idp, keys, {"IdentityPoolId": POOL, "Logins": logins})["IdentityId"]
    answer = get_credentials(idp, keys, {"IdentityId": identity, "Logins": logins})
    assert answer["IdentityId"] == identity and set(answer["Credentials"]) == {"AccessKeyId", "SecretKey", "SessionToken", "Expiration"}

    def kind(operation: Any, body: dict[str, Any]) -> str:
        with pytest.raises(IdentityError) as caught:
            operation(idp, keys, body)
        return caught.value.kind

    assert kind(get_id, {"IdentityPoolId": POOL, "Logins": {"x": 1}}) == "InvalidParameterException"
    assert kind(get_id, {"IdentityPoolId": POOL, "AccountId": "abc", "Logins": logins}) == "InvalidParameterException"
    assert kind(get_id, {"IdentityPoolId": "us-east-1:" + str(uuid.uuid4()), "Logins": logins}) == "ResourceNotFoundException"
    wrong_use = {next(iter(logins)): id_token(keys, idp.issuer_url, token_use="access")}
    assert kind(get_id, {"IdentityPoolId": POOL, "Logins": wrong_use}) == "NotAuthorizedException"
    two_logins = {**logins, "accounts.google.com": "x"}
    assert kind(get_id, {"IdentityPoolId": POOL, "Logins": two_logins}) == "NotAuthorizedException"
    assert kind(get_credentials, {"IdentityId": 7, "Logins": logins}) == "InvalidParameterException"
