"""Shared fixtures: every server runs for real on an ephemeral 127.0.0.1 port."""

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.idp",
    "tests.fixtures.browser",
    "tests.fixtures.stack",
    "tests.fixtures.redis",
    "tests.fixtures.oidc_provider",
    "tests.fixtures.proxies",
    "tests.fixtures.faulty",
]

