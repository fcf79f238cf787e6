"""Resource servers declare the custom scopes app clients may be allowed (as in Cognito)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.idp.config import load_idp_config, parse_idp_config
from gateway.idp.resource_servers import ResourceScope, ResourceServerConfig

ROOT = Path(__file__).resolve().parents[3]
POOL = "us-east-1_P1"


def machine(scopes: list[str], client_id: str = "svc") -> dict:
    return {"client_id": client_id, "client_secret": "s", "flows": ["client_credentials"], "scopes": scopes}


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_idp_config({"user_pool_id": POOL, **data})
    return caught.value.problems


def test_scopes_as_names_or_mappings_and_urls_as_identifiers() -> None:
    config = parse_idp_config({
        "user_pool_id": POOL,
        "resource_servers": [
            {"identifier": "orders", "name": "Orders API", "scopes": ["read", {"name": "write", "description": "Change orders"}]},
            {"identifier": "https://api.example.com", "scopes": ["reports.read"]},
        ],
        "clients": [machine(["orders/read", "orders/write", "https://api.example.com/reports.read"])],
    })  # fmt: skip
    orders, api = config.resource_servers
    assert orders == ResourceServerConfig("orders", "Orders API", (ResourceScope("read"), ResourceScope("write", "Change orders")))
    assert orders.custom_scopes == ("orders/read", "orders/write")
    assert api.name == "https://api.example.com" and api.custom_scopes == ("https://api.example.com/reports.read",)
    assert config.clients[0].scopes == ("orders/read", "orders/write", "https://api.example.com/reports.read")


def test_a_client_may_only_have_declared_custom_scopes() -> None:
    servers = [{"identifier": "orders", "scopes": ["read"]}]
    assert problems({"resource_servers": servers, "clients": [machine(["orders/read", "orders/raed", "billing/read"])]}) == [
        "clients[0].scopes: 'orders/raed': resource server 'orders' has no scope 'raed'",
        "clients[0].scopes: 'billing/read': no resource server 'billing' (declare it under resource_servers)",
    ]
    # Without any resource server, a custom scope is still an error, as in Cognito: nothing declares it.
    assert problems({"clients": [machine(["api/read"])]}) == [
        "clients[0].scopes: 'api/read': no resource server 'api' (declare it under resource_servers)"
    ]
    # Standard scopes need no resource server; neither does a user client's authorization-code flow.
    user_client = {"client_id": "web", "callback_urls": ["http://localhost/cb"], "scopes": ["openid", "orders/read"]}
    assert parse_idp_config({"user_pool_id": POOL, "resource_servers": servers, "clients": [user_client]}).clients[0].scopes[1] == "orders/read"


def test_every_bad_resource_server_is_one_line_naming_its_key() -> None:
    found = problems({
        "resource_servers": [
            {"identifier": "orders", "scopes": ["read", "read", "a/b", "has space", 7, {"name": "x", "colour": "red"}, {}]},
            {"identifier": "orders", "scopes": "read"},
            {"identifier": 'say "hi"', "surprise": 1},
            {"scopes": []},
            "orders",
        ],
    })  # fmt: skip
    assert found == [
        "resource_servers[0].scopes[1]: duplicate scope 'read'",
        "resource_servers[0].scopes[2]: a scope name is 1-256 printable ASCII characters without spaces, quotes, / or \\",
        "resource_servers[0].scopes[3]: a scope name is 1-256 printable ASCII characters without spaces, quotes, / or \\",
        "resource_servers[0].scopes[4]: must be a scope name or {name, description}",
        "resource_servers[0].scopes[5].colour: unknown key",
        "resource_servers[0].scopes[6].name: is required",
        "resource_servers[1].identifier: duplicate resource server 'orders'",
        "resource_servers[1].scopes: must be a list of scope names or {name, description}",
        "resource_servers[2].surprise: unknown key",
        "resource_servers[2].identifier: must be 1-256 printable ASCII characters without spaces, quotes or backslashes",
        "resource_servers[3].identifier: is required",
        "resource_servers[4]: must be a mapping",
    ]
    assert problems({"resource_servers": {"identifier": "orders"}}) == ["resource_servers: must be a list of {identifier, name, scopes}"]


def test_the_shipped_pools_declare_their_machine_clients_scopes() -> None:
    for name in ("idp.yaml", "idp-compose.yaml"):
        config = load_idp_config(ROOT / "config" / name)
        assert [s.custom_scopes for s in config.resource_servers] == [("orders/read", "orders/write")]
    client = load_idp_config(ROOT / "config" / "idp.yaml").client("orders-reporter")  # compose files hold no client secret
    assert client is not None and client.flows == ("client_credentials",) and client.scopes == ("orders/read",)
