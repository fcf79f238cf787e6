"""Open-redirect corpus: nothing but same-origin paths survives."""

import pytest

from gateway.auth.return_to import safe_return_path

KEPT = ["/", "/app", "/app/page?x=1&y=%2F", "/a/b#frag", "/search?q=https://example.com", "/caf%C3%A9", "/path:with:colons"]

REFUSED = [
    None,
    "",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "https://evil.example",
    "http:evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "app/relative",
    "/%2F%2Fevil.example",
    "/%2f/evil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%255C%255Cevil.example",
    "/%252F%252Fevil.example",
    "/\tevil",
    "/\nLocation: https://evil.example",
    "/\r\nSet-Cookie: x=1",
    "/%0d%0aSet-Cookie:x=1",
    "/\x00",
    "/%00",
    " /app",
    "/" + "a" * 3000,
    "/ /evil",
    "\x0b//evil.example",
]


@pytest.mark.parametrize("path", KEPT)
def test_local_paths_are_kept(path):
    assert safe_return_path(path) == path


@pytest.mark.parametrize("path", REFUSED)
def test_everything_else_falls_back_to_root(path):
    assert safe_return_path(path) == "/"
