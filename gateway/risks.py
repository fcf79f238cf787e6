"""Settings that are valid but risky: what `check` warns about (`warning: <key>: …`), exit code unchanged.

Each function looks at one part of a validated `Config` and returns `Risk`s; nothing here does I/O.
The thresholds, and why:

- `public_url` over plain http outside localhost: the session cookie then travels in clear text
  and cannot be `Secure`; anyone on the path can copy it and be that user.
- A session secret shorter than 43 characters, or repeating few characters: sessions are sealed
  with a key derived by a fast HKDF, so whoever holds one cookie can test guesses of the secret
  offline, as fast as hardware allows, and then forge sessions for anyone. 43 characters is what
  `openssl rand -base64 32` (256 random bits) gives; config.py already refuses fewer than 32. Every
  secret is checked, not only the first: each one still opens (and so forges) sessions. A long
  secret is also flagged when its characters, counted, carry under 128 bits (`aaaa…`; random
  base64 of that length carries about 180), or when most of its three-character runs repeat
  (`changeme` six times).
- `trusted_proxies` wider than any private range (`0.0.0.0/0`, `::/0`, `0.0.0.0/1`, a public /6):
  every such peer may set `X-Forwarded-*` (the client address and scheme the app sees) and is
  answered by forward-auth (`/oauth2/auth`) with identity headers and tokens.
- A `regex:` rule path not anchored with `^` (in each alternative): rules *search* the path, so
  `regex:/public` also matches `/admin/public`, and an `allow: anyone` rule written so opens paths
  it was not meant for.
- `default: {allow: anyone}` with a provider: every path no rule names is public (fail-open).
"""

from __future__ import annotations

import collections
import ipaddress
import math
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .config import Config

RANDOM_SECRET_CHARS = 43  # len(base64 of 32 random bytes), as `openssl rand -base64 32` prints (44 with "=")
MIN_SECRET_BITS = 128.0
_LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}
_INLINE_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")


@dataclass(frozen=True)
class Risk:
    key: str  # the config key, as problems name them: `session.secrets[0]`, `rules[2].path`
    message: str

    def line(self) -> str:
        return f"warning: {self.key}: {self.message}"


def risks(config: Config) -> list[Risk]:
    """Every risky setting of a valid config, in the order of the file's usual layout."""
    found = public_url_risks(config) + secret_risks(config) + proxy_risks(config)
    return found + rule_risks(config)


def is_local_host(host: str) -> bool:
    """localhost, or a loopback address: traffic that never leaves the machine."""
    if host.lower() in _LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def public_url_risks(config: Config) -> list[Risk]:
    url = config.public_url
    if url is None or not url.lower().startswith("http://"):
        return []
    if is_local_host(urlsplit(url).hostname or ""):
        return []
    return [Risk("public_url", "is plain http outside localhost: the session cookie crosses the network in clear text "
                               "and cannot be Secure; use https (TLS here or at a proxy in front)")]  # fmt: skip


def secret_bits(secret: str) -> float:
    """An upper estimate of a secret's entropy: its length times the Shannon entropy of its characters."""
    counts = collections.Counter(secret)
    total = len(secret)
    return -total * sum(n / total * math.log2(n / total) for n in counts.values())


def secret_weakness(secret: str) -> str | None:
    """Why this session secret looks guessable, or None."""
    if len(secret) < RANDOM_SECRET_CHARS:
        return (f"is {len(secret)} characters; a random secret of {RANDOM_SECRET_CHARS}+ (openssl rand -base64 32) is "
                "safe against offline guessing by anyone holding a cookie, a shorter or chosen one may not be")  # fmt: skip
    if secret_bits(secret) < MIN_SECRET_BITS or _repeats_itself(secret):
        return "repeats characters or runs of characters: use a random one (openssl rand -base64 32)"
    return None


def _repeats_itself(secret: str) -> bool:
    """More than half of its three-character runs occur twice (`changeme` six times): random text does not."""
    runs = len(secret) - 2
    return len({secret[i : i + 3] for i in range(runs)}) < runs / 2


def secret_risks(config: Config) -> list[Risk]:
    found = []
    for index, secret in enumerate(config.session.secrets):
        weakness = secret_weakness(secret)
        if weakness is not None:
            found.append(Risk(f"session.secrets[{index}]", weakness))
    return found


def _too_wide(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    # The widest private ranges are 10.0.0.0/8 and fc00::/7; anything wider reaches the Internet.
    widest_private = 8 if network.version == 4 else 7
    return network.prefixlen == 0 or (network.prefixlen < widest_private and not network.is_private)


def proxy_risks(config: Config) -> list[Risk]:
    return [
        Risk(f"trusted_proxies[{index}]", f"{network} trusts {'every address' if network.prefixlen == 0 else 'a large part of the Internet'}: "
                                          "any such peer may set X-Forwarded-* and is answered by forward-auth; list your proxies only")
        for index, network in enumerate(config.trusted_proxies)
        if _too_wide(network)
    ]  # fmt: skip


def _alternatives(pattern: str) -> list[str]:
    """The top-level `|` alternatives of a regular expression (groups and classes kept whole)."""
    parts, current, depth, in_class, escaped = [], "", 0, False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == "|" and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def is_anchored(regex: str) -> bool:
    """Every alternative starts at the beginning of the path (`^…` or `\\A…`, after inline flags)."""
    regex = _INLINE_FLAGS.sub("", regex)
    return all(part.startswith(("^", "\\A")) for part in _alternatives(regex))


def rule_risks(config: Config) -> list[Risk]:
    found = []
    for index, rule in enumerate(config.rules):
        path = rule.path or ""
        if path.startswith("regex:") and not is_anchored(path[len("regex:") :]):
            found.append(Risk(f"rules[{index}].path", f"{path!r} is not anchored with ^: rules search the path, so it also "
                                                      "matches in the middle (/x/...); start it (and each | alternative) with ^"))  # fmt: skip
    if config.provider is not None and config.default_rule.allow_anyone:
        found.append(Risk("default", "allow: anyone makes every path that no rule names public; "
                                     "prefer unauthenticated: authenticate and rules with allow: anyone for public paths"))  # fmt: skip
    return found

