"""The path rules match on, and refusal of raw paths that an upstream could read differently.

A rule protects `/admin/**`; an attacker sends `/public/../admin`, `/%61dmin`, `//admin`,
`/admin;x` or `/admin%2Fsettings`. Some upstream decodes, collapses or strips these into a
path the rule never saw. Rather than guess what each upstream does, the gateway refuses every
raw path whose meaning is not the same for all of them.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from urllib.parse import unquote

from ..errors import GatewayError

# Percent-encoded unreserved characters (RFC 3986 §2.3), path delimiters, NUL, or an encoded "%"
# (double encoding): decoding any of them changes what the path means to some server.
_ENCODED_MEANINGFUL = re.compile(r"%(?:[46][1-9a-fA-F]|[57][0-9aA]|3[0-9]|2[5dDeEfF]|5[cCfF]|7[eE]|3[bB]|00)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (NEL, U+0085, ends a line for some parsers)
# What an upstream that applies Unicode compatibility normalization (NFKC) would turn into a path
# delimiter, a dot or an escape: `/public/%EF%BC%8E%EF%BC%8E/admin` (fullwidth `．．`) becomes `..`.
_STRUCTURAL = frozenset("./\\;%?#")
_RAW_NON_UTF8 = re.compile("[\ud800-\udfff]")  # how aiohttp reads header bytes that are not UTF-8 (surrogateescape)


class AmbiguousPath(GatewayError):
    """A raw path that different servers would interpret differently; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def rule_path(raw_path: str) -> str:
    """The decoded path for rule matching, or AmbiguousPath.

    `raw_path` is the request target's path without the query, still percent-encoded.
    """
    if not raw_path.startswith("/"):
        raise AmbiguousPath("the path must start with /")
    if "#" in raw_path:
        # Servers and clients drop a fragment: `/admin#x` would reach the upstream as `/admin`.
        raise AmbiguousPath("fragments (#) are not allowed in request targets")
    if "\\" in raw_path:
        raise AmbiguousPath("backslashes are not allowed in paths")
    if "//" in raw_path:
        raise AmbiguousPath("empty path segments (//) are not allowed")
    if ";" in raw_path:
        raise AmbiguousPath("path parameters (;) are not allowed")
    if _ENCODED_MEANINGFUL.search(raw_path):
        raise AmbiguousPath("percent-encoded letters, digits, dots, slashes or % are not allowed in paths")
    segments = raw_path.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise AmbiguousPath("dot segments (. and ..) are not allowed in paths")
    try:
        decoded = unquote(raw_path, errors="strict") if "%" in raw_path else raw_path
    except UnicodeDecodeError:
        raise AmbiguousPath("the path is not valid UTF-8 once decoded") from None
    if not decoded.isascii() and _RAW_NON_UTF8.search(decoded):
        # Raw bytes that are not UTF-8 (a proxy's X-Forwarded-Uri may carry them): servers read them differently.
        raise AmbiguousPath("the path is not valid UTF-8")
    if _CONTROL.search(decoded):
        raise AmbiguousPath("control characters are not allowed in paths")
    if not decoded.isascii() and any(_normalizes_to_structure(ch) for ch in set(decoded)):
        raise AmbiguousPath("characters that Unicode normalization turns into . / \\ ; % ? or # are not allowed in paths")
    return decoded


@lru_cache(maxsize=4096)
def _normalizes_to_structure(ch: str) -> bool:
    return ch > "\x7f" and not _STRUCTURAL.isdisjoint(unicodedata.normalize("NFKC", ch))


def split_target(target: str) -> tuple[str, str]:
    """`/a/b?x=1` -> (`/a/b`, `x=1`)."""
    path, _, query = target.partition("?")
    return path, query
