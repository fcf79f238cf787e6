"""Fuzzing the request parsers: raw paths, return paths, Host headers, Cookie and X-Forwarded-* headers.

Each parser either refuses an input the way it documents (AmbiguousPath, `/`, False) or returns a
value every later reader agrees on; none raises anything else. `derandomize=True` (no example
database): the same examples every run, locally and in CI — see test_fuzz_sessions.py.
"""

from __future__ import annotations

import posixpath
import string
import unicodedata
from http.cookies import SimpleCookie
from urllib.parse import unquote, urljoin, urlsplit

from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.auth.paths import AmbiguousPath, rule_path, split_target
from gateway.auth.return_to import safe_return_path
from gateway.auth.rules import compile_path
from gateway.auth.setup import gateway_cookie_filter
from gateway.hosts import host_name, request_host, split_host, valid_host
from gateway.proxy.headers import ClientView, forwarding_headers, without_cookies

FAST = settings(derandomize=True, deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow])

# --- raw paths ----------------------------------------------------------------------------------

PIECES = [
    "admin", "public", "Admin", "a", "", ".", "..", "...", "%2e", "%2E", "%2e%2e", ".%2e", "%252e", "%2f", "%2F", "%5c", "%5C",
    "\\", "%00", "%0a", "%0d%0a", "%09", "%25", "%41dmin", "%61dmin", "%7e", ";", ";jsessionid=1", "%3b", "#", "%23", "?", "%3f",
    "%c0%ae", "%c0%af", "%e0%80%ae", "%ef%bc%8e", "%EF%BC%8E%EF%BC%8E", "%ef%bc%8f", "\uff0e\uff0e", "\u2025", "%e2%80%a5", "%c2%85",
    "%e2%80%8b", "%ed%a0%80", "%ff", "%", "%z", "%4", "caf%c3%a9", "café", "\u0085", "\x7f", " ", "%20", "+", "*", "~", "@", ":",
]
path_texts = st.one_of(
    st.lists(st.sampled_from(PIECES) | st.text(alphabet=string.ascii_letters + "%.-_~!$&'()*+,=:@", max_size=6), max_size=8).map(
        lambda parts: "/" + "/".join(parts)
    ),
    st.lists(st.sampled_from(PIECES), max_size=8).map("".join),
    st.text(max_size=40),
    st.text(alphabet=string.printable, max_size=40).map(lambda text: "/" + text),
    st.binary(max_size=20).map(lambda raw: "/" + raw.decode("utf-8", "surrogateescape")),  # raw bytes, as aiohttp reads a header
)
RULE_PATTERNS = ["/admin", "/admin/**", "/admin/*", "/public/**", "/api/*/items", "/**", "/a"]


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 as most servers apply it (posixpath keeps a leading //, harmless here)."""
    normalized = posixpath.normpath(path)
    return normalized + "/" if path.endswith("/") and normalized != "/" else normalized


def upstream_views(decoded: str) -> set[str]:
    """Paths an upstream could make of the decoded path: decode again, normalize dots, NFKC, backslashes."""
    views = {decoded}
    for view in list(views):
        views |= {unquote(view), remove_dot_segments(view), unicodedata.normalize("NFKC", view), view.replace("\\", "/")}
    for view in list(views):
        views |= {remove_dot_segments(unicodedata.normalize("NFKC", unquote(view)))}
    return views


@FAST
@example("/admin#x")  # regression: the fragment reached the upstream as /admin while rules saw /admin#x
@example("/admin/settings#")
@example("/search/%3Fq")  # allowed (tests/unit/auth/test_paths_rules.py): an encoded ? or # stays data
@example("/public/%EF%BC%8E%EF%BC%8E/admin")  # regression: fullwidth dots, `..` for an NFKC-normalizing upstream
@example("/public/\uff0e\uff0e/admin")
@example("/public/\u2025/admin")  # two-dot leader: NFKC gives ..
@example("/x%ef%bc%8fadmin")  # fullwidth solidus
@example("/a%c2%85b")  # regression: C1 control (NEL)
@example("/%c0%ae%c0%ae/admin")  # overlong UTF-8 dots
@example("/admin\udcff")  # regression: a raw non-UTF-8 byte in X-Forwarded-Uri passed (and crashed the sign-in redirect)
@given(path_texts)
def test_rule_path_is_refused_or_means_one_thing_to_every_reader(raw):
    path, query = split_target(raw)
    assert path + ("?" + query if "?" in raw else "") == raw
    try:
        decoded = rule_path(path)
    except AmbiguousPath as refused:
        assert refused.reason
        return
    assert decoded.startswith("/")
    assert not any(unicodedata.category(ch) == "Cc" for ch in decoded)
    for view in upstream_views(decoded):
        segments = view.split("/")
        assert "." not in segments and ".." not in segments, f"{raw!r} -> {view!r}"
        assert "//" not in view and "\\" not in view and ";" not in view
    # A raw `#` never passes (the upstream would drop what follows); a decoded one came from %23 and stays data.
    assert "#" not in path
    # Decoding again, normalizing dots or Unicode changes nothing: every upstream sees the path the rules saw.
    assert unquote(decoded) == decoded
    assert remove_dot_segments(decoded) == decoded
    # aiohttp's router (request.path) and the proxied URL agree with the rules.
    assert URL.build(path=path, encoded=True).path == decoded
    assert make_mocked_request("GET", path).path == decoded
    for pattern in RULE_PATTERNS:
        matches = compile_path(pattern)
        assert {bool(matches(view)) for view in upstream_views(decoded)} == {bool(matches(decoded))}


@FAST
@given(st.text(max_size=60))
def test_split_target_keeps_everything(target):
    path, query = split_target(target)
    assert "?" not in path and (path == target or f"{path}?{query}" == target)


# --- return paths ------------------------------------------------------------------------------

RETURN_PIECES = [
    "/", "//", "/\\", "\\", "%2f", "%2F", "%5c", "%252f", "%25", "evil.com", "@evil", "https:", "http://evil", "javascript:alert(1)",
    "%09", "%0a", "\t", "\n", " ", "%20", "?", "#", "x", "..", ".", "%2e", "\u3002", "\uff0f", "%ef%bc%8f", "\x00", "%00", ":",
]
return_candidates = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.lists(st.sampled_from(RETURN_PIECES), max_size=8).map("".join),
    st.lists(st.sampled_from(RETURN_PIECES), max_size=6).map(lambda parts: "/" + "".join(parts)),
    st.text(max_size=3000),
)


@FAST
@example("/%2F%2Fevil.com")
@example("/%252F%252Fevil.com")
@example("/\t/evil.com")
@example("/%5Cevil.com")
@example("/x" * 1500)
@given(return_candidates)
def test_safe_return_path_stays_on_this_origin(candidate):
    result = safe_return_path(candidate)
    assert result == "/" or result == candidate
    for form in (result, unquote(result), unquote(unquote(result))):
        assert form.startswith("/") and not form.startswith("//") and not form.startswith("/\\"), form
        assert not any(ch in form for ch in "\\\t\n\r\x00 ")
    # Where a client that resolves the Location against our origin ends up: still our origin.
    base = "https://gw.example.com/page"
    assert urlsplit(urljoin(base, result)).netloc == "gw.example.com"
    assert URL(base).join(URL(result)).host == "gw.example.com"


# --- Host headers ------------------------------------------------------------------------------

HOST_PIECES = ["example.com", "EXAMPLE.com", "admin.local", ".", "..", ":", ":80", ":99999", ":", "[", "]", "[::1]", "::1", "@", "a b",
               "\"", ",", ";", "/", "\\", "_", "-", "xn--bcher-kva", "\u212a", "é", "\x00", "\r\n", "1.2.3.4", "%2e"]
hosts = st.one_of(
    st.text(max_size=30),
    st.lists(st.sampled_from(HOST_PIECES), max_size=5).map("".join),
    st.from_regex(r"\A[a-zA-Z0-9.\-_\[\]:]{0,30}\Z"),
)


@FAST
@example("[")
@example("[::1")
@example("a..b")
@example("example.com.")
@given(hosts)
def test_hosts_never_raise_and_valid_ones_are_plain(header):
    name, port = split_host(header)
    host_name(header)
    if not valid_host(header):
        return
    assert not any(ch in header for ch in "\"',; \t\r\n/\\@%") and header.isascii()
    assert port == "" or port.isdigit()
    assert host_name(header) == host_name(header.upper()) == host_name(header).lower()
    assert not host_name(header).endswith(".") and ".." not in host_name(header)
    assert request_host(make_mocked_request("GET", "/", headers={"Host": header})) == host_name(header)


# --- Cookie and X-Forwarded-* headers ----------------------------------------------------------

OURS = gateway_cookie_filter("_gw_session")
cookie_names = st.one_of(
    st.sampled_from(["_gw_session_0", "_gw_session_1", "_gw_session", "__Host-_gw_session_0", "__Secure-_gw_session_login_ab",
                     "_gw_session_login_0123", "_gw_sessionx", "app", "sid", "_GW_SESSION_0", " _gw_session_0", "_gw_session_0 "]),
    st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=12),
)
cookie_values = st.one_of(st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=20), st.text(max_size=20))


@FAST
@given(st.lists(st.lists(st.tuples(cookie_names, cookie_values), max_size=6).map(lambda pairs: "; ".join(f"{n}={v}" for n, v in pairs)) | st.text(max_size=60), max_size=3))
def test_without_cookies_never_forwards_ours(cookie_headers):
    kept = without_cookies(cookie_headers, OURS)
    pairs = [pair.strip() for pair in kept.split(";") if pair.strip()]
    assert not any(OURS(pair.split("=", 1)[0].strip()) for pair in pairs)
    original = [pair.strip() for header in cookie_headers for pair in header.split(";") if pair.strip()]
    assert pairs == [pair for pair in original if not OURS(pair.split("=", 1)[0].strip())]


browser_names = st.one_of(cookie_names.filter(lambda name: name == name.strip()), st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=8))
browser_values = st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=20)


@FAST
@given(st.lists(st.tuples(browser_names, browser_values), max_size=8))
def test_the_app_parses_none_of_ours_from_a_browser_cookie_header(pairs):
    """What a browser sends, what the app's own cookie parser (aiohttp's, Python's) makes of our output."""
    kept = without_cookies(["; ".join(f"{name}={value}" for name, value in pairs)], OURS)
    as_app = make_mocked_request("GET", "/", headers={"Cookie": kept}).cookies
    assert not any(OURS(name) for name in as_app)
    simple = SimpleCookie()
    simple.load(kept)
    assert not any(OURS(name) for name in simple)
    assert {n: v for n, v in pairs if not OURS(n)}.items() >= dict(as_app).items()


header_values = st.one_of(st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00"), max_size=40), st.sampled_from(['"', "\\", 'a"b', "for=1.1.1.1", "1.1.1.1, 2.2.2.2", "", "by=x;for=y"]))
forwarded_names = st.sampled_from(["X-Forwarded-For", "x-forwarded-for", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "Forwarded", "Host", "X-Other"])


@FAST
@given(
    st.lists(st.tuples(forwarded_names, header_values), max_size=8),
    st.sampled_from(["192.0.2.7", "2001:db8::1", "::ffff:1.2.3.4", "unix"]),
    st.sampled_from(["http", "https"]),
    hosts.filter(valid_host),
    st.from_regex(r"\A[0-9]{0,5}\Z"),
    st.booleans(),
)
def test_forwarding_headers(incoming, peer, proto, host, port, trusted):
    incoming_headers = CIMultiDictProxy(CIMultiDict(incoming))
    out = forwarding_headers(incoming_headers, ClientView(peer, proto, host, port), trusted)
    assert set(out) == {"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "Forwarded"}
    assert out["X-Forwarded-For"].endswith(peer)
    assert out["Forwarded"].endswith(f'host="{host}"' if host else f"proto={proto}")
    if not trusted:  # nothing the client sent survives
        assert out["X-Forwarded-For"] == peer and out["X-Forwarded-Host"] == host and out["X-Forwarded-Proto"] == proto
        assert out["Forwarded"].count("for=") == 1
    for value in out.values():
        assert "\r" not in value and "\n" not in value
