"""Fuzzed raw requests against a real gateway with sign-in (local Cognito, a recording upstream).

Each example is one raw HTTP/1.1 request written to a socket: fuzzed method, raw target (paths from
the unit fuzzing's hostile pieces, the gateway's own endpoints), Host, header names and values
(underscores, identity-header spoofs, huge, duplicates) and Cookie header (random chunks, the real
session's chunks edited, or the real session untouched). Properties:

- every request gets a status line, never a 500;
- the upstream receives identity headers only from a request carrying the real, untouched session,
  and then they name the signed-in user (never a client's spoofed value);
- without that session nothing reaches the upstream outside the rule `/public/**` (allow anyone):
  protected paths answer 302/401/400/431 instead; no response carries identity either.

Hypothesis runs in a worker thread (blocking sockets) while the servers run on the test's event
loop. `derandomize=True`, no example database: the same requests every run (see
tests/unit/test_fuzz_sessions.py); 150 examples per property take a few seconds.
"""

from __future__ import annotations

import asyncio
import random
import socket
import string
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.auth.paths import AmbiguousPath, rule_path, split_target
from tests.fixtures.servers import start_runner

EXAMPLES = settings(derandomize=True, deadline=None, max_examples=300, suppress_health_check=list(HealthCheck))
IDENTITY = ("x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username", "x-forwarded-access-token",
            "x-amzn-oidc-", "x-gateway-")
SESSION = "_gw_session"
B64 = string.ascii_letters + string.digits + "-_"


@dataclass
class Recorder:
    """An upstream that answers 200 to anything and remembers what it received."""

    seen: list[tuple[str, list[tuple[str, str]]]]

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.raw_path, [(k, v) for k, v in request.headers.items()]))
        return web.Response(text="upstream")


def exchange(port: int, data: bytes) -> tuple[int, list[tuple[str, str]]]:
    """Write one raw request, read until the server closes; the status and response headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    assert received.startswith(b"HTTP/1."), f"no status line for {data[:300]!r}: {received[:200]!r}"
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in head[1:] if ":" in line]
    return int(head[0].split()[1]), headers  # type: ignore[return-value]


# --- strategies --------------------------------------------------------------------------------

PATH_PIECES = [
    "public", "private", "api", "admin", "", ".", "..", "%2e%2e", "%2E", "%2f", "%5c", "\\", "%00", "%0a", "%25", "%61", ";x", "#x",
    "%23", "?", "%3f", "%c0%ae", "%ef%bc%8e%ef%bc%8e", "\uff0e\uff0e", "%c2%85", "%ff", "%", "caf%c3%a9", "x", "whoami", "*", "~",
]
ENDPOINTS = ["/oauth2/start?rd=", "/oauth2/callback?state=", "/oauth2/callback?code=x&state=", "/oauth2/userinfo", "/oauth2/sign_out?rd=",
             "/oauth2/auth", "/healthz", "/readyz", "/.well-known/jwks.json", "/oauth2/keys/x"]
targets = st.one_of(
    st.lists(st.sampled_from(PATH_PIECES) | st.text(alphabet=string.ascii_letters + "%.-_~", max_size=5), max_size=6).map(lambda p: "/" + "/".join(p)),
    st.tuples(st.sampled_from(["/public/", "/private/", "/api/", "/bearer/", "/"]), st.text(max_size=20)).map("".join),
    st.tuples(st.sampled_from(["/public/", "/private/", "/api/", "/", "/public/../"]), st.text(alphabet=string.ascii_letters + "/.%", max_size=12)).map("".join),
    st.tuples(st.sampled_from(ENDPOINTS), st.text(alphabet=string.printable, max_size=30)).map("".join),
    st.sampled_from(["/bearer/x", "/oauth2/auth", "/api/x"]),
    st.sampled_from(["*", "http://127.0.0.1/private", "//private", "private", "/public/../private", "/public#/../private", "/%70rivate",
                     "/oauth2/callback?state=%ED%A0%80&code=x", "/oauth2/start?rd=%ED%A0%80", "/oauth2/start?rd=//evil&idp=%00",
                     "/public%23/../private", "/public/%EF%BC%8E%EF%BC%8E/private", "/oauth2/auth?x=1"]),
)
methods = st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "G_T", "CONNECT", "TRACE"])
SPOOFS = ["X-Forwarded-User", "X_Forwarded_User", "x-forwarded-user", "X-Forwarded-Email", "X-Forwarded-Groups", "x-amzn-oidc-data",
          "x-amzn-oidc-identity", "X-Amzn-Oidc-Accesstoken", "X-Forwarded-Access-Token", "X-Forwarded-Preferred-Username", "Authorization",
          "X-Forwarded-For", "X-Forwarded-Host", "Forwarded", "X-Original-URI", "X-Forwarded-Uri", "X-HTTP-Method-Override",
          "Accept", "X-Requested-With", "Sec-Fetch-Site", "Origin", "Referer", "X-Real-IP", "X-Auth-Request-User", "Remote-User"]
UNSENDABLE = {"content-length", "transfer-encoding", "connection", "expect", "upgrade", "host", "cookie", "te", "keep-alive"}
# Bytes that are not UTF-8 reach handlers as lone surrogates (aiohttp decodes headers with surrogateescape).
raw_bytes = st.binary(max_size=16).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"").decode("utf-8", "surrogateescape"))
high_bytes = st.binary(min_size=1, max_size=8).map(lambda raw: bytes(b | 0x80 for b in raw).decode("utf-8", "surrogateescape"))  # parsers accept them
token_names = st.text(alphabet=string.ascii_letters + string.digits + "-_!#$%&'*+.^`|~", min_size=1, max_size=20)
header_names = st.one_of(st.sampled_from(SPOOFS), st.sampled_from(SPOOFS), token_names, token_names, st.text(min_size=1, max_size=10)).filter(
    lambda name: name.strip().lower() not in UNSENDABLE
)
printable = st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""), max_size=40)
header_values = st.one_of(
    st.sampled_from(["alice", "admin", "evil@example.com", "admins", "Bearer x.y.z", "application/json", "XMLHttpRequest", "same-origin",
                     "http://127.0.0.1", "1.2.3.4", "for=1.2.3.4"]),
    printable,
    printable,
    st.text(max_size=20),
    st.builds(lambda ch, n: ch * n, st.sampled_from("ax_"), st.integers(1000, 70_000)),  # huge: 431, or the parser's 400
    raw_bytes,
    raw_bytes.map("Bearer {}".format),
    st.sampled_from(["/private", "/public/../private", "/bearer/x", "/private?x=\udcff", "/%ef%bc%8e"]),  # X-Forwarded-Uri & co.
)
WELL_FORMED_PIECES = ["public", "private", "api", "admin", "x", "whoami", "", ".", "..", "%2e", "%2f", "%61", ";x", "%23", "%3f", "caf%c3%a9",
                      "%ef%bc%8e%ef%bc%8e", "%c2%85", "a.b", "~", "*"]
well_formed_targets = st.tuples(
    st.sampled_from(["/public", "/private", "/api", "/bearer", ""]),
    st.lists(st.sampled_from(WELL_FORMED_PIECES) | st.text(alphabet=string.ascii_letters + "-._~", max_size=6), max_size=4),
    st.sampled_from(["", "?q=1", "?rd=//evil", "?a=%2e%2e"]),
).map(lambda parts: (parts[0] + "/" + "/".join(parts[1]) if parts[1] or not parts[0] else parts[0]) + parts[2])
visible = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=40)
well_formed_headers = st.lists(st.tuples(st.sampled_from(SPOOFS) | token_names, visible), max_size=6).map(
    lambda pairs: [(n, v.strip()) for n, v in pairs if n.lower() not in UNSENDABLE]
)

hosts = st.one_of(
    st.just(None),  # the real one, most of the time
    st.just(None),
    st.just(None),
    st.just(None),
    st.sampled_from(["", "127.0.0.1", "evil.com", "a b", "127.0.0.1:99999", "[::1]", "[", "x..y", "\u212a", "a,b", "a/b", "a@b", "a_b"]),
    st.text(max_size=15),
)


@dataclass(frozen=True)
class Cookies:
    header: str | None  # the Cookie header, if any
    valid: bool | None  # True: the real session untouched; False: surely no session; None: either (duplicates)


def cookie_strategy(real: dict[str, str], real_only: bool = False) -> st.SearchStrategy[Cookies]:
    chunks = [real[f"{SESSION}_{i}"] for i in range(len(real)) if f"{SESSION}_{i}" in real]
    app_pairs = st.lists(st.tuples(st.sampled_from(["app", "sid", "theme", "_gw_sessionx", "__Host-x"]), st.text(alphabet=B64, max_size=10)), max_size=3)

    def join(pairs: list[tuple[str, str]], order: random.Random) -> str:
        order.shuffle(pairs)
        return "; ".join(f"{n}={v}" for n, v in pairs)

    def real_session(extra: list[tuple[str, str]], seed: int) -> Cookies:
        pairs = [(f"{SESSION}_{i}", chunk) for i, chunk in enumerate(chunks)] + extra
        return Cookies(join(pairs, random.Random(seed)), True)

    def edited(kind: str, index: int, pos: int, seed: int, extra: list[tuple[str, str]]) -> Cookies:
        index %= len(chunks)
        values = list(chunks)
        value = values[index]
        pos %= len(value) - 1  # never the last character (all its spellings are distinct anyway)
        if kind == "flip":
            values[index] = value[:pos] + B64[(B64.index(value[pos]) + 1) % 64] + value[pos + 1 :]
        elif kind == "truncate":
            values[index] = value[:pos]
        elif kind == "swap" and len(values) > 1:
            values[0], values[1] = values[1], values[0]
        elif kind == "drop_first":
            values[0] = ""
        else:
            values[index] = value + "A"
        pairs = [(f"{SESSION}_{i}", v) for i, v in enumerate(values) if v] + extra
        return Cookies(join(pairs, random.Random(seed)), False)

    garbage_names = st.one_of(st.builds("{}_{}".format, st.just(SESSION), st.integers(0, 12) | st.integers(0, 10**9)),
                              st.builds("{}_login_{}".format, st.just(SESSION), st.text(alphabet=string.ascii_letters + string.digits, max_size=16)))
    garbage = st.lists(st.tuples(garbage_names, st.sampled_from(chunks) | st.text(alphabet=B64 + "=.!", max_size=300)), max_size=12)
    if real_only:
        return st.builds(real_session, app_pairs, st.integers(0, 99))
    return st.one_of(
        st.just(Cookies(None, False)),
        app_pairs.map(lambda pairs: Cookies("; ".join(f"{n}={v}" for n, v in pairs), False)),
        st.builds(lambda pairs: Cookies("; ".join(f"{n}={v}" for n, v in pairs), None), garbage),  # duplicates may repeat a real chunk
        st.builds(edited, st.sampled_from(["flip", "truncate", "swap", "drop_first", "append"]), st.integers(0, 7), st.integers(0, 10**6),
                  st.integers(0, 99), app_pairs),
        st.builds(real_session, app_pairs, st.integers(0, 99)),
        st.text(max_size=60).map(lambda text: Cookies(text, None)),
        st.builds(real_session, app_pairs, st.integers(0, 99)),  # the real session, more often
        st.builds(edited, st.sampled_from(["flip", "truncate", "swap", "drop_first", "append"]), st.integers(0, 7), st.integers(0, 10**6),
                  st.integers(0, 99), app_pairs),
    )


def non_utf8(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def ambiguous(raw_target: str) -> bool:
    try:
        rule_path(split_target(raw_target)[0])
    except AmbiguousPath:
        return True
    return False


def protected(raw_target: str) -> bool:
    """Whether the rules below would ask for sign-in: anything outside /public/**."""
    try:
        path = rule_path(split_target(raw_target)[0])
    except AmbiguousPath:
        return True
    return not (path == "/public" or path.startswith("/public/"))


# --- the test ----------------------------------------------------------------------------------


async def start(make_stack, browser) -> tuple[web.AppRunner, int, dict[str, str], Recorder]:
    """A gateway with sign-in in front of a recording upstream, and the cookies of a real session (alice)."""
    recorder = Recorder([])
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner, upstream = await start_runner(app)
    try:
        stack = await make_stack(
            upstreams=[{"path": "/", "url": upstream}],
            rules=[
                {"path": "/public/**", "allow": "anyone"},
                {"path": "/api/**", "unauthenticated": "deny"},
                {"path": "/bearer/**", "bearer": True, "unauthenticated": "deny"},
            ],
            trusted_proxies=["127.0.0.1/32"],  # so /oauth2/auth (forward-auth) answers the fuzzer too
        )
        await browser.sign_in(stack.gateway + "/private/start")
    except BaseException:
        await runner.cleanup()
        raise
    real = {name: value for name, value in browser.cookies().items() if name.startswith(SESSION + "_") and "_login_" not in name}
    assert real and recorder.seen[-1][0] == "/private/start"
    return runner, urlsplit(stack.gateway).port or 0, real, recorder


@pytest.mark.parametrize(
    "well_formed",
    [
        pytest.param(False, id="raw"),  # anything: most of these die in aiohttp's parser (400) or at the gateway's edge checks
        pytest.param(True, id="well-formed"),  # requests every parser accepts, so each one meets the gate: its decision is checked exactly
    ],
)
async def test_hostile_requests(make_stack, browser, well_formed):
    runner, port, real, recorder = await start(make_stack, browser)
    try:
        await asyncio.to_thread(fuzz, port, real, recorder, well_formed=well_formed)
    finally:
        await runner.cleanup()


def fuzz(port: int, real: dict[str, str], recorder: Recorder, well_formed: bool) -> None:
    host_header = f"127.0.0.1:{port}"

    @EXAMPLES
    @given(
        method=st.sampled_from(["GET", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) if well_formed else methods,
        target=st.one_of(well_formed_targets, st.just("/oauth2/auth")) if well_formed else targets,
        host=st.none() if well_formed else hosts,
        headers=well_formed_headers if well_formed else st.lists(st.tuples(header_names, header_values), max_size=6),
        cookies=st.one_of(cookie_strategy(real), cookie_strategy(real, real_only=True)) if well_formed else cookie_strategy(real),
        json_client=st.booleans(),
        extra=st.one_of(
            st.just([]),
            st.tuples(st.sampled_from(["Authorization", "X-Forwarded-Uri", "X-Original-URI"]), visible if well_formed else header_values),
            st.tuples(st.just("Authorization"), high_bytes.map("Bearer {}".format)),
            st.tuples(st.sampled_from(["X-Forwarded-Uri", "X-Original-URI"]), high_bytes.map("/private?q={}".format)),
        ).map(lambda pair: list(pair) and [pair]),
    )
    def one_request(
        method: str, target: str, host: str | None, headers: list[tuple[str, str]], cookies: Cookies, json_client: bool, extra: list[tuple[str, str]]
    ) -> None:
        headers = headers + extra  # Authorization (bearer rules) and forward-auth's original URI, more often
        if well_formed:  # aiohttp's parser refuses some headers twice (User-Agent, Authorization…): one of each name
            headers = list({name.lower(): (name, value) for name, value in reversed(headers) if not (json_client and name.lower() == "accept")}.values())
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header if host is None else host}"]
        if json_client:
            lines.append("Accept: application/json")
        lines += [f"{name}: {value}" for name, value in headers]
        if cookies.header is not None:
            lines.append(f"Cookie: {cookies.header}")
        lines.append("Connection: close")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        before = len(recorder.seen)
        status, response_headers = exchange(port, raw)
        assert status != 500, raw[:500]
        assert status < 500 or status == 503 and "/readyz" in target, (status, raw[:500])
        reached = recorder.seen[before:]
        if cookies.valid is True:
            for _, received in reached:  # the real user, never a spoofed value
                users = [v for k, v in received if k.lower() == "x-forwarded-user"]
                assert users == ["alice"], (users, raw[:500])
            if well_formed and not ambiguous(target) and not target.startswith("/oauth2/"):  # signed in: every unambiguous path reaches the app
                assert status == 200 and len(reached) == 1, (status, raw[:500])
            return
        for name, value in response_headers:
            assert not name.lower().startswith(IDENTITY), (name, value, raw[:500])
        for received_target, received in reached:
            identity = [(k, v) for k, v in received if k.lower().startswith(IDENTITY)]
            if cookies.valid is None and identity:  # a duplicated real chunk may make a real session: then it is alice
                assert dict((k.lower(), v) for k, v in identity).get("x-forwarded-user") == "alice", (identity, raw[:500])
                continue
            assert not identity, (identity, raw[:500])
            assert not protected(received_target), (received_target, status, raw[:500])
        if protected(target) and not target.startswith(("/oauth2/", "/healthz", "/readyz", "/.well-known/")) and cookies.valid is False:
            # 404: no route at all (CONNECT, `OPTIONS *`, a decoded newline that aiohttp's `.*` route does not match): nothing proxied
            assert not reached and status in (302, 400, 401, 404, 431), (status, raw[:500])
            if well_formed:  # exactly what the rules say
                expected = 400 if ambiguous(target) else 401 if json_client or method not in ("GET", "HEAD") or target.startswith("/api") else 302
                assert status == expected or status == 401 and expected == 302, (status, expected, raw[:500])

    one_request()


async def test_sign_in_start_with_odd_login_cookie_names(make_stack):
    """Found by fuzzing: five pending login cookies, one named `_gw_session_login_(` (aiohttp parses it): /oauth2/start was a 500."""
    stack = await make_stack()
    cookies = "; ".join(f"{SESSION}_login_{suffix}=x" for suffix in ["(", "a", "b", "c", "d"])
    raw = f"GET /oauth2/start HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookies}\r\nConnection: close\r\n\r\n".encode()
    status, _ = await asyncio.to_thread(exchange, urlsplit(stack.gateway).port or 0, raw)
    assert status == 302


@pytest.mark.parametrize(
    "target, header, expected",
    [
        ("/bearer", b"Authorization: Bearer \x80", 401),  # was a 500: bearer.py hashlib.sha256(token.encode())
        ("/oauth2/auth", b"X-Forwarded-Uri: /private?q=\x80", 403),  # was a 500: forward.py urlencode({"rd": target})
        ("/oauth2/auth", b"X-Forwarded-Method: G\x80T", 403),
    ],
    ids=["bearer-token", "forward-auth-uri", "forward-auth-method"],
)
async def test_non_utf8_header_bytes_are_refused(make_stack, target, header, expected):
    """Found by fuzzing: a raw non-UTF-8 byte in a header the gateway reads was a 500."""
    stack = await make_stack(rules=[{"path": "/bearer/**", "bearer": True, "unauthenticated": "deny"}], trusted_proxies=["127.0.0.1/32"])
    raw = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + header + b"\r\nConnection: close\r\n\r\n"
    status, _ = await asyncio.to_thread(exchange, urlsplit(stack.gateway).port or 0, raw)
    assert status == expected
