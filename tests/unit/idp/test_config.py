"""Local Cognito config: defaults, derived issuer, and one problem line per bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.idp.config import load_idp_config, parse_idp_config

ROOT = Path(__file__).resolve().parents[3]


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_idp_config(data)
    return caught.value.problems


def test_demo_pool_loads() -> None:
    config = load_idp_config(ROOT / "config/idp.yaml")
    assert config.issuer_url == "http://127.0.0.1:9000/us-east-1_LocalPool"
    assert config.base_url == "http://127.0.0.1:9000"
    client = config.client("gatewaydemo")
    assert client and client.client_secret is None and not client.is_confidential
    assert client.callback_urls == ("http://localhost:8080/oauth2/callback",)
    assert [u.username for u in config.users] == ["alice", "bob"]
    assert config.users[0].groups == ("admins",) and config.users[1].groups == ()
    assert dict(config.users[0].attributes) == {"custom:department": "engineering"}
    assert config.admin_api is False and config.lifetimes.access == 3600


def test_defaults_and_overrides() -> None:
    config = parse_idp_config({"user_pool_id": "eu-west-1_Abc123", "listen": "0.0.0.0:9100"})
    assert config.region == "eu-west-1"
    assert config.issuer_url == "http://localhost:9100/eu-west-1_Abc123"  # a wildcard bind is not an address
    assert config.lifetimes.refresh == 2592000 and config.lifetimes.auth_code == 300
    assert config.with_listen(port=9200).issuer_url == "http://localhost:9200/eu-west-1_Abc123"
    explicit = parse_idp_config({"user_pool_id": "eu-west-1_Abc123", "issuer": "https://idp.test/eu-west-1_Abc123"})
    assert explicit.base_url == "https://idp.test" and explicit.with_listen(port=1).issuer_url.startswith("https://idp.test")


def test_every_problem_is_reported_with_its_key() -> None:
    found = problems({
        "user_pool_id": "LocalPool",
        "listen": "nowhere",
        "issuer": "ftp://x",
        "surprise": True,
        "token_lifetimes": {"access": 0, "forever": 1},
        "refresh_token_grace_period": 90,
        "admin_api": "yes",
        "clients": [
            {"client_id": "a", "callback_urls": ["not a url"], "flows": ["implicit"], "scopes": ["openid", "bogus"]},
            {"client_id": "a", "flows": ["client_credentials"], "colour": "red"},
        ],
        "groups": ["admins"],
        "users": [{"username": "alice", "groups": ["nope"]}, {"username": "ALICE", "password": "x"}],
        "signing_keys": 3,
    })  # fmt: skip
    expected = [
        "surprise: unknown key",
        "user_pool_id: must look like <region>_<alphanumerics>, e.g. us-east-1_LocalPool",
        "listen: must be HOST:PORT, e.g. 127.0.0.1:9000",
        "issuer: must be an http(s) URL",
        "users[0].password: is required",
        "users[0].groups: group 'nope' is not in the top-level groups list",
        "users[1].username: duplicate username 'ALICE' (usernames are case-insensitive)",
        "signing_keys: a number of keys to generate must be 1 or 2",
        "refresh_token_grace_period: must be at least 0 and at most 60",
        "token_lifetimes.forever: unknown key",
        "token_lifetimes.access: must be at least 1",
        "clients[0].flows: 'implicit' is not supported (use code, client_credentials)",
        "clients[0].callback_urls: must be a list of URLs",
        "clients[0].scopes: 'bogus' is neither a standard scope nor <resource>/<scope>",
        "clients[1].colour: unknown key",
        "clients[1].client_id: duplicate client id 'a'",
        "clients[1].flows: client_credentials needs a client_secret (as in Cognito)",
        "admin_api: must be true or false",
    ]
    assert sorted(found) == sorted(expected)


def test_issuer_must_end_with_the_pool_id() -> None:
    assert problems({"user_pool_id": "us-east-1_P1", "issuer": "http://idp.test/other"}) == [
        "issuer: must end with /us-east-1_P1 (Cognito's issuer is <origin>/<pool id>)"
    ]


def test_region_must_match_pool_id() -> None:
    assert problems({"user_pool_id": "us-east-1_P1", "region": "eu-west-1"}) == [
        "region: must match the prefix of user_pool_id (us-east-1)"
    ]


def test_yaml_errors_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_SECRET", "s3cret")
    path = tmp_path / "idp.yaml"
    path.write_text(
        "user_pool_id: us-east-1_P1\nclients:\n  - {client_id: c, client_secret: '${POOL_SECRET}', "
        "callback_urls: ['${CB:-http://localhost/cb}']}\n"
    )
    client = load_idp_config(path).clients[0]
    assert client.client_secret == "s3cret" and client.callback_urls == ("http://localhost/cb",)
    path.write_text("user_pool_id: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_idp_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_idp_config(tmp_path / "missing.yaml")


def test_signing_key_files(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from gateway.idp.keys import KeyRing

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "key.pem").write_bytes(pem)
    (tmp_path / "idp.yaml").write_text(
        "user_pool_id: us-east-1_P1\nsigning_keys: [{kid: k1, private_key_file: key.pem}]\n"
    )
    config = load_idp_config(tmp_path / "idp.yaml")
    ring = KeyRing.from_config(config.signing_keys, config.generated_key_count)
    assert ring.current.kid == "k1" and ring.jwks()["keys"][0]["kid"] == "k1"
    bad = parse_idp_config({"user_pool_id": "us-east-1_P1", "signing_keys": [{"private_key_pem": "junk"}]})
    with pytest.raises(ConfigError, match=r"signing_keys\[0\]: not an unencrypted PEM private key"):
        KeyRing.from_config(bad.signing_keys, bad.generated_key_count)
