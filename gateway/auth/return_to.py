"""Where to send the browser after sign-in: only same-origin relative paths, anything else is `/`."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MAX_LENGTH = 2048
# Control characters, spaces and backslashes: browsers strip or reinterpret them (`/\evil` -> `//evil`).
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def safe_return_path(candidate: str | None) -> str:
    """`candidate` if it is a path on this origin (`/app?x=1#y`), otherwise `/`."""
    if not candidate or len(candidate) > MAX_LENGTH:
        return "/"
    # Check the raw value and its decoded forms: a later hop may decode `%2F%2Fevil` into `//evil`.
    decoded_once = unquote(candidate)
    for form in (candidate, decoded_once, unquote(decoded_once)):
        if not _is_local_path(form):
            return "/"
    return candidate


def _is_local_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith("//") or _UNSAFE.search(value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc
