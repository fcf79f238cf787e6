"""Fuzzing the session layer: cookie chunks, sealed values, login-state cookies, sealed payloads.

Two properties everywhere:
- no input escapes as an exception (in the gateway that would be a 500);
- nothing opens as a session unless the real secret sealed exactly that content: a session that
  loads is byte-for-byte one the test sealed, from cookies whose chunks join to its sealed value.

Hypothesis settings: `derandomize=True` (and so no example database): every run, locally and in CI,
tries the same examples, so a red build is reproducible from the log and never flaky; coverage of
new inputs comes from editing the strategies, not from luck. Failures found while writing these
tests are pinned with `@example(...)`. Unit properties run 200-1000 examples each.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import string
import time
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.auth.identity import header_value
from gateway.auth.rules import permits
from gateway.config import IdentityConfig, RuleConfig
from gateway.session.cookie_store import MAX_CHUNKS, CookieSessionStore
from gateway.session.crypto import SecretBox
from gateway.session.login_state import LoginState, LoginStateCookies
from gateway.session.model import SessionState, SignedIn, groups_of, username_of

SECRET = "fuzz-session-secret-0123456789abcdef"
OTHER_SECRET = "another-secret-0123456789abcdef-xyz"
NAME = "_gw_session"
B64 = string.ascii_letters + string.digits + "-_"

FAST = settings(derandomize=True, deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
MEDIUM = settings(FAST, max_examples=300)
SLOW = settings(FAST, max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BOX = SecretBox((SECRET,), "session")
STORAGE = CookieSessionStore(BOX, NAME, secure=False, max_lifetime=12 * 3600)
RULES = (
    RuleConfig(path="/a", groups=("admins",)),
    RuleConfig(path="/b", scopes=("openid", "api/read")),
    RuleConfig(path="/c", claims=(("custom:tier", ("gold", "1")), ("email_verified", ("true",)))),
    RuleConfig(path="/d", email_domains=("example.com",)),
)


def run(coro: Any) -> Any:
    """Drive a coroutine that never really waits (the cookie store's methods) to its result."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("the coroutine waited for something")


class CookieRequest:
    """All CookieSessionStore.load reads: `request.cookies` (any mapping) and the raw Cookie header."""

    def __init__(self, cookies: dict[str, str]) -> None:
        self.cookies = cookies
        self.headers = CIMultiDict({"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_like(payload: Any, filler: int = 0) -> str:
    """A token shaped like a JWT (its signature was checked at sign-in, never again)."""
    header = b64url(json.dumps({"alg": "RS256", "kid": "k1"}).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{header}.{body}.{b64url(random.Random(filler).randbytes(256 + filler))}"


def sealed_session(session: dict[str, Any], created: Any = None, box: SecretBox = BOX, context: str = NAME) -> str:
    data = {"created": int(time.time()) if created is None else created, "session": session}
    return box.seal(json.dumps(data, separators=(",", ":")).encode(), context.encode())


def chunks_of(sealed: str) -> list[str]:
    return [sealed[i : i + STORAGE.chunk_size] for i in range(0, len(sealed), STORAGE.chunk_size)]


def chunk_cookies(chunks: list[str], name: str = NAME) -> dict[str, str]:
    return {f"{name}_{i}": chunk for i, chunk in enumerate(chunks)}


# A Cognito-sized real session: 3 chunks, so reordering, dropping and moving chunk boundaries all mean something.
REAL_CLAIMS = {"sub": "0f1e", "cognito:username": "alice", "email": "alice@example.com", "email_verified": True, "cognito:groups": ["admins"]}
REAL_SESSION = {
    "id": jwt_like(REAL_CLAIMS, filler=3000),
    "at": jwt_like({"sub": "0f1e", "scope": "openid email", "token_use": "access"}, filler=3000),
    "rt": b64url(random.Random(7).randbytes(4000)),
    "exp": int(time.time()) + 3600,
    "iat": int(time.time()),
}
REAL_SEALED = sealed_session(REAL_SESSION)
REAL_CHUNKS = chunks_of(REAL_SEALED)
assert len(REAL_CHUNKS) == 3


def load(cookies: dict[str, str]) -> SessionState | None:
    return run(STORAGE.load(CookieRequest(cookies)))


def load_from_header(header: str) -> SessionState | None:
    return run(STORAGE.load(make_mocked_request("GET", "/", headers={"Cookie": header})))


def joined_chunks(cookies: dict[str, str]) -> str:
    """What the storage joins: `_0`, `_1`, … up to the first gap, at most MAX_CHUNKS."""
    parts = []
    for index in range(MAX_CHUNKS):
        if f"{NAME}_{index}" not in cookies:
            break
        parts.append(cookies[f"{NAME}_{index}"])
    return "".join(parts)


def assert_only_real(session: SessionState | None, cookies: dict[str, str] | None = None) -> None:
    if session is None:
        return
    assert session.signed_in.to_dict() == REAL_SESSION, "a session opened that the real secret never sealed"
    if cookies is not None:
        assert joined_chunks(cookies) == REAL_SEALED, "a session opened from chunks that are not its sealed value"


# --- strategies --------------------------------------------------------------------------------

chunk_names = st.one_of(
    st.builds("{}_{}".format, st.just(NAME), st.integers(0, MAX_CHUNKS + 2)),
    st.builds("{}_{}".format, st.just(NAME), st.integers(-3, 10**12)),
    st.sampled_from(
        [NAME, f"{NAME}_", f"{NAME}_-1", f"{NAME}_00", f"{NAME}_01", f"{NAME}_0 ", f" {NAME}_0", f"{NAME.upper()}_0", f"__Host-{NAME}_0",
         f"{NAME}_\uff10", f"{NAME}_\u0660", f"{NAME}_99999999", f"{NAME}_login_0123456789abcdef", f"{NAME}_0\x00"]
    ),
    st.text(max_size=24),
)
chunk_values = st.one_of(
    st.text(max_size=64),
    st.text(alphabet=B64, max_size=400),
    st.text(alphabet=B64 + "=+/.!%~ ", max_size=200),
    st.builds(lambda char, count: char * count, st.characters(), st.integers(0, 20_000)),  # huge values
    st.sampled_from(REAL_CHUNKS),
)


@FAST
@given(st.dictionaries(chunk_names, chunk_values, max_size=12))
def test_arbitrary_cookie_dicts_are_no_session(cookies):
    session = load(cookies)
    assert_only_real(session, cookies)


@FAST
@example(f"{NAME}_0=a; {NAME}_0=b; {NAME}_1=c")
@example("; ".join(f"{NAME}_{i}={chunk}" for i, chunk in enumerate(REAL_CHUNKS)) + f"; {NAME}_0=x")  # a duplicate chunk 0
@given(
    st.lists(
        st.tuples(chunk_names, chunk_values).map(lambda pair: "=".join(pair))
        | st.text(max_size=40),
        max_size=12,
    ).flatmap(lambda pairs: st.sampled_from(["; ", ";", ",", " ; "]).map(lambda sep: sep.join(pairs)))
)
def test_arbitrary_cookie_headers_are_no_session(header):
    """Through aiohttp's own Cookie parsing: duplicate names, separators, quotes, non-ASCII."""
    assert_only_real(load_from_header(header))


@SLOW
@given(count=st.integers(0, 1000), start=st.integers(0, 3), seed=st.integers(0, 2**32), absurd=st.booleans())
def test_hundreds_of_chunks_are_no_session(count, start, seed, absurd):
    rnd = random.Random(seed)
    cookies = {f"{NAME}_{start + i}": "".join(rnd.choices(B64, k=rnd.randrange(1, 64))) for i in range(count)}
    if absurd:
        cookies[f"{NAME}_99999999"] = REAL_CHUNKS[0]
        cookies[f"{NAME}_{10**30}"] = REAL_CHUNKS[1]
    assert_only_real(load(cookies), cookies)


# Edits to the real session's chunk cookies. Each keeps or breaks the sealed value; the property
# says the session opens exactly when the chunks still join to the sealed value.
chunk_index = st.integers(0, len(REAL_CHUNKS) - 1)
position = st.integers(0, STORAGE.chunk_size)
edits = st.one_of(
    st.tuples(st.just("swap"), chunk_index, chunk_index),
    st.tuples(st.just("drop"), chunk_index),
    st.tuples(st.just("truncate"), chunk_index, position),
    st.tuples(st.just("flip"), chunk_index, position, st.integers(0, 7)),
    st.tuples(st.just("replace"), chunk_index, position, st.sampled_from(B64 + "=!.% \x00é")),
    st.tuples(st.just("insert"), chunk_index, position, st.sampled_from(B64 + "=!.% \n\x00é")),
    st.tuples(st.just("move_boundary"), chunk_index, st.integers(-50, 50)),
    st.tuples(st.just("extra"), st.integers(0, 12), chunk_values),
    st.tuples(st.just("duplicate"), chunk_index, st.integers(0, 12)),
)


def apply(edit: tuple, cookies: dict[str, str]) -> None:
    kind, *args = edit
    names = [f"{NAME}_{i}" for i in range(len(REAL_CHUNKS))]

    def at(index: int) -> str:
        return cookies.get(names[index], "")

    if kind == "swap":
        i, j = args
        cookies[names[i]], cookies[names[j]] = at(j), at(i)
    elif kind == "drop":
        cookies.pop(names[args[0]], None)
    elif kind == "truncate":
        cookies[names[args[0]]] = at(args[0])[: args[1]]
    elif kind in ("flip", "replace", "insert"):
        i, pos = args[0], args[1]
        value = at(i)
        pos = min(pos, max(len(value) - 1, 0))
        if kind == "flip" and value:
            value = value[:pos] + chr(ord(value[pos]) ^ (1 << args[2])) + value[pos + 1 :]
        elif kind == "replace" and value:
            value = value[:pos] + args[2] + value[pos + 1 :]
        elif kind == "insert":
            value = value[:pos] + args[2] + value[pos:]
        cookies[names[i]] = value
    elif kind == "move_boundary":  # the same characters, split differently between chunk i and i+1
        i, shift = args
        if i + 1 < len(names):
            joined = at(i) + at(i + 1)
            cut = max(0, min(len(joined), len(at(i)) + shift))
            cookies[names[i]], cookies[names[i + 1]] = joined[:cut], joined[cut:]
    elif kind == "extra":
        cookies[f"{NAME}_{args[0]}"] = args[1]
    elif kind == "duplicate":
        cookies[f"{NAME}_{args[1]}"] = at(args[0])


@FAST
@example([("replace", 2, 10**6, "A")])  # a changed last character: only its spare bits differ for some values
@example([("insert", 2, 10**6, "!")])  # a character outside the alphabet that the base64 decoder skipped
@example([("insert", 0, 5, "\n")])
@example([("move_boundary", 0, 7)])  # valid: the same sealed value, cut elsewhere
@given(st.lists(edits, min_size=1, max_size=4))
def test_edited_real_chunks_open_only_as_the_real_session(edit_list):
    cookies = chunk_cookies(REAL_CHUNKS)
    for edit in edit_list:
        apply(edit, cookies)
    session = load(cookies)
    assert_only_real(session, cookies)
    if joined_chunks(cookies) == REAL_SEALED:
        assert session is not None and session.signed_in.to_dict() == REAL_SESSION


def test_the_untouched_real_session_opens():
    state = load(chunk_cookies(REAL_CHUNKS))
    assert state is not None and state.signed_in.to_dict() == REAL_SESSION


@MEDIUM
@given(st.sampled_from(["other-secret", "other-purpose", "other-name", "login-box"]), st.permutations(range(3)))
def test_sealed_by_anything_else_is_no_session(source, order):
    if source == "other-secret":
        sealed = sealed_session(REAL_SESSION, box=SecretBox((OTHER_SECRET,), "session"))
    elif source == "other-purpose":
        sealed = sealed_session(REAL_SESSION, box=SecretBox((SECRET,), "login"))
    elif source == "other-name":
        sealed = sealed_session(REAL_SESSION, context="__Host-" + NAME)
    else:
        sealed = SecretBox((SECRET,), "login").seal(json.dumps({"created": time.time(), "session": REAL_SESSION}).encode(), b"_gw_session_login_0")
    chunks = chunks_of(sealed)
    assert load(chunk_cookies(chunks)) is None
    shuffled = [chunks[i] for i in order if i < len(chunks)]
    assert load(chunk_cookies(shuffled)) is None


# --- SecretBox.open ---------------------------------------------------------------------------

KEY_ID = BOX._sealing_id


@FAST
@example("", b"")
@example("AQ", b"")
@example("=" * 8, b"")
@example("\udcff", b"")  # a lone surrogate: not encodable
@given(st.one_of(st.text(), st.text(alphabet=B64, min_size=20, max_size=300), st.text(alphabet=B64 + "=+/", max_size=300)), st.binary(max_size=40))
def test_secretbox_opens_no_random_string(token, context):
    assert BOX.open(token, context) is None
    assert BOX.open(token, NAME.encode()) is None


@FAST
@given(st.binary(max_size=600), st.sampled_from([b"", NAME.encode(), b"_gw_session_login_x"]))
def test_secretbox_opens_nothing_with_the_right_header_and_random_ciphertext(tail, context):
    """Version byte and the real key id pass the cheap checks; AES-GCM must still refuse."""
    assert BOX.open(b64url(b"\x01" + KEY_ID + tail), context) is None


REAL_TOKEN = BOX.seal(b'{"hello":"world"}', b"ctx")


@FAST
@example(("append", 0, "!"))  # regression: the decoder skipped characters outside the alphabet
@example(("append", 0, "="))
@example(("insert", 3, "\n"))
@example(("last_bits", 0, "x"))  # regression: the last character's spare bits were ignored
@given(
    st.tuples(
        st.sampled_from(["append", "insert", "replace", "delete", "last_bits", "truncate"]),
        st.integers(0, len(REAL_TOKEN)),
        st.sampled_from(list(B64 + "=!.~ \n\t+/é")),
    )
)
def test_secretbox_one_spelling_per_sealed_value(edit):
    kind, pos, char = edit
    token = REAL_TOKEN
    pos = min(pos, len(token) - 1)
    if kind == "append":
        edited = token + char
    elif kind == "insert":
        edited = token[:pos] + char + token[pos:]
    elif kind == "replace":
        edited = token[:pos] + char + token[pos + 1 :]
    elif kind == "delete":
        edited = token[:pos] + token[pos + 1 :]
    elif kind == "truncate":
        edited = token[:pos]
    else:  # every spelling of the last character
        edited = token[:-1] + B64[(B64.index(token[-1]) + 1 + pos) % 64]
    opened = BOX.open(edited, b"ctx")
    assert opened is None or edited == token
    assert BOX.open(token, b"ctx") == b'{"hello":"world"}'


# --- well-sealed but malformed payloads --------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12
)
created_values = st.one_of(json_values, st.just(None), st.floats(-1e13, 1e13), st.integers(int(time.time()) - 10**5, int(time.time()) + 10**5))


def consume(session: SessionState | None) -> None:
    """What the gateway does with a loaded session, from the gate to the response (authenticate.py, login.py, identity.py)."""
    if session is None:
        return
    signed_in = session.signed_in
    claims = signed_in.claims
    username_of(claims)
    groups_of(claims)
    for rule in RULES:
        permits(rule, claims)
    for _, claim in IdentityConfig.headers:
        header_value(claims.get(claim))
    if signed_in.expires_within(0):
        return
    int(signed_in.access_expires_at)  # /oauth2/userinfo's expires_at, the ALB header's exp
    signed_in.to_dict()


def save(session: SessionState | None) -> None:
    if session is None:
        run(STORAGE.clear(CookieRequest({})))
    else:
        run(STORAGE.save(CookieRequest({}), session))


@MEDIUM
@example(created=float("nan"), session={})  # regression: NaN passed the age check, then int(NaN) crashed saving
@example(created=float("inf"), session={})
@example(created=10**400, session={})  # regression: too large for a float: OverflowError
@example(created=None, session="not a mapping")  # regression: aiohttp-session's update() raised
@example(created=None, session=[1, 2])
@example(created=None, session={"iat": float("nan")})  # regression: signed_in_at() gave NaN, saving crashed on int(NaN)
@example(created=None, session={"iat": 10**400})  # regression: OverflowError in signed_in_at()
@example(created=None, session={"iat": float("-inf")})
@given(created=created_values, session=json_values)
def test_well_sealed_malformed_envelopes_never_crash_the_store(created, session):
    data = {"created": int(time.time()) if created is None else created, "session": session}
    cookies = chunk_cookies(chunks_of(BOX.seal(json.dumps(data).encode(), NAME.encode())))
    loaded = load(cookies)
    if loaded is not None:
        assert math.isfinite(loaded.started_at)
        save(loaded)


def test_deeply_nested_sealed_json_is_no_session():
    """Regression: json.loads raised RecursionError (not a ValueError) on a small, well-compressed payload."""
    cookies = chunk_cookies(chunks_of(BOX.seal(b"[" * 100_000 + b"]" * 100_000, NAME.encode())))
    assert load(cookies) is None


# Token payloads of any JSON shape, numbers of any kind (NaN, infinities, strings, bools included).
numbers = st.one_of(st.integers(-(10**11), 10**11), st.floats(), st.from_regex(r"\A-?[0-9]{1,8}(\.[0-9]{0,3})?\Z"), st.sampled_from(["nan", "inf", True]))
claims_dicts = st.dictionaries(
    st.sampled_from(["sub", "cognito:username", "username", "preferred_username", "email", "email_verified", "cognito:groups", "groups", "scope", "custom:tier"])
    | st.text(max_size=8),
    json_values,
    max_size=8,
)
tokens = st.one_of(claims_dicts.map(jwt_like), json_values.map(jwt_like), st.text(alphabet=st.characters(exclude_characters="."), max_size=40), st.just("a.b.c"), st.just("a.!!!.c"))
session_dicts = st.fixed_dictionaries(
    {},
    optional={
        "id": tokens,
        "at": tokens,
        "rt": st.none() | st.text(max_size=20),
        "exp": numbers | st.just(None),
        "iat": numbers | st.just(None),
        "seen": st.integers(0, 2 * 10**9) | numbers,
    },
)


@MEDIUM
@given(session_dicts)
def test_well_sealed_session_values_never_crash_what_uses_them(session):
    cookies = chunk_cookies(chunks_of(sealed_session(session)))
    loaded = load(cookies)
    iat = session.get("iat")
    if isinstance(iat, (int, float)) and not isinstance(iat, bool) and time.time() - iat > STORAGE.max_lifetime:
        assert loaded is None  # max_lifetime counts from the sealed sign-in time
    consume(loaded)
    save(loaded)


NOW = int(time.time())
MODEL_SHAPES = [  # found by fuzzing: each was a 500 (or a session that never expired)
    pytest.param({"id": "a.bnVsbA.c", "at": "", "exp": 1e11, "iat": NOW}, id="id-token-payload-null"),
    pytest.param({"id": "a.WzFd.c", "at": "", "exp": 1e11, "iat": NOW}, id="id-token-payload-list"),
    pytest.param({"id": "", "at": "a.MQ.c", "exp": 1e11, "iat": NOW}, id="access-token-payload-int"),
    pytest.param({"id": "", "at": "", "exp": "nan", "iat": NOW}, id="exp-nan"),
    pytest.param({"id": "", "at": "", "exp": "inf", "iat": NOW}, id="exp-inf"),
    pytest.param({"id": "", "at": "", "exp": float("nan"), "iat": NOW}, id="exp-float-nan"),
    pytest.param({"id": 1, "at": "", "exp": 1e11, "iat": NOW}, id="id-token-not-a-string"),
    pytest.param({"id": "", "at": "", "rt": 5, "exp": 1e11, "iat": NOW}, id="refresh-token-not-a-string"),
]


@pytest.mark.parametrize("session", MODEL_SHAPES)
def test_ill_shaped_sessions_are_read_safely(session):
    loaded = load(chunk_cookies(chunks_of(sealed_session(session))))
    assert (loaded is not None) == (SignedIn.from_dict(session) is not None)  # opened: only the model refuses
    consume(loaded)
    if loaded is not None:  # accepted: then its values are sane
        assert math.isfinite(loaded.signed_in.access_expires_at) and isinstance(loaded.signed_in.claims, dict)


# --- login-state cookies -----------------------------------------------------------------------

LOGIN_BOX = SecretBox((SECRET,), "login")
LOGINS = LoginStateCookies(LOGIN_BOX, f"{NAME}_login", secure=False)
REAL_LOGIN = LoginState(state="s" * 43, nonce="n" * 43, code_verifier="v" * 86, return_to="/x", created_at=time.time())


def login_cookie(login: LoginState) -> tuple[str, str]:
    name = LOGINS.name_for(login.state)
    return name, LOGIN_BOX.seal(json.dumps(login.__dict__).encode(), name.encode())


login_names = st.one_of(chunk_names, st.builds("{}_login_{}".format, st.just(NAME), st.text(max_size=10)), st.builds(LOGINS.name_for, st.text(max_size=10)), st.just(LOGINS.name_for(REAL_LOGIN.state)))


@FAST
@example({}, "")
@example({LOGINS.name_for("x"): REAL_SEALED[:100]}, "x")
@given(st.dictionaries(login_names, chunk_values, max_size=8), st.text(max_size=60) | st.just(REAL_LOGIN.state))
def test_login_state_load_of_arbitrary_cookies_is_none(cookies, state):
    assert LOGINS.load(CookieRequest(cookies), state) is None


@FAST
@example({f"{NAME}_login_{suffix}": "x" for suffix in ["(", "a", "b", "c", "d"]})  # was a 500: deleting `_login_(`
@given(st.dictionaries(login_names, chunk_values, max_size=40))
def test_login_state_save_with_arbitrary_cookies(cookies):
    written = {c.name: c for c in LOGINS.save(CookieRequest(cookies), REAL_LOGIN)}
    new_name = LOGINS.name_for(REAL_LOGIN.state)
    assert written[new_name].value
    assert all(c.header_value() for c in written.values())  # every name can be carried by Set-Cookie
    ours = re.compile(re.escape(LOGINS.base_name) + "_[0-9a-f]{16}")
    pending = [n for n in cookies if ours.fullmatch(n) and n != new_name]
    deleted = [n for n, c in written.items() if c.value is None]
    assert all(ours.fullmatch(n) for n in deleted)  # only names the gateway could have set
    assert len(pending) - len(deleted) + 1 <= 5


@FAST
@given(st.integers(0, 400), st.sampled_from(B64 + "!"))
def test_a_real_login_cookie_edited_opens_only_unedited(pos, char):
    name, sealed = login_cookie(REAL_LOGIN)
    edited = sealed[: min(pos, len(sealed))] + char + sealed[min(pos, len(sealed)) + 1 :]
    loaded = LOGINS.load(CookieRequest({name: edited}), REAL_LOGIN.state)
    assert loaded is None or edited == sealed
    assert LOGINS.load(CookieRequest({name: sealed}), REAL_LOGIN.state) == REAL_LOGIN
    assert LOGINS.load(CookieRequest({name: sealed}), REAL_LOGIN.state + "x") is None


login_payloads = st.fixed_dictionaries(
    {},
    optional={
        "state": st.just(REAL_LOGIN.state) | json_values,
        "nonce": st.text(max_size=5) | json_values,
        "code_verifier": st.text(max_size=5) | json_values,
        "return_to": st.text(max_size=5) | json_values,
        "created_at": st.floats(-1e12, 1e12) | st.floats() | st.integers(-(10**12), 10**12) | json_values,
        "extra": json_values,
    },
)


@MEDIUM
@given(login_payloads)
def test_well_sealed_malformed_login_states_never_crash(payload):
    name = LOGINS.name_for(REAL_LOGIN.state)
    sealed = LOGIN_BOX.seal(json.dumps(payload).encode(), name.encode())
    loaded = LOGINS.load(CookieRequest({name: sealed}), REAL_LOGIN.state)
    assert loaded is None or (loaded.state == REAL_LOGIN.state and isinstance(loaded.created_at, (int, float)))


LOGIN_SHAPES = [
    pytest.param({"state": 1, "nonce": "", "code_verifier": "", "return_to": "/", "created_at": 0}, id="state-not-a-string"),
    pytest.param({"state": "é", "nonce": "", "code_verifier": "", "return_to": "/", "created_at": 0}, id="state-not-ascii"),
    pytest.param({"state": "x", "nonce": "", "code_verifier": "", "return_to": "/", "created_at": "0"}, id="created-at-a-string"),
    pytest.param({"state": "x", "nonce": "", "code_verifier": "", "return_to": "/", "created_at": float("nan")}, id="created-at-nan"),
    pytest.param({"state": "x", "nonce": 1, "code_verifier": "", "return_to": "/", "created_at": NOW}, id="nonce-not-a-string"),
]


@pytest.mark.parametrize("payload", LOGIN_SHAPES)
def test_ill_typed_login_states_are_refused(payload):
    """Found by fuzzing (each was a TypeError, a 500 on the callback): well sealed, wrongly typed."""
    state = payload["state"] if isinstance(payload["state"], str) else "1"
    name = LOGINS.name_for(state)
    assert LOGINS.load(CookieRequest({name: LOGIN_BOX.seal(json.dumps(payload).encode(), name.encode())}), state) is None


@pytest.mark.parametrize("seen", ["x", [1], float("nan"), True], ids=["string", "list", "nan", "bool"])
def test_unreadable_activity_time_counts_as_idle(seen):
    """Found by fuzzing: a well-sealed session whose `seen` is not a finite number was a 500 (or never idle).

    `seen_at is None` is what the authenticator ends as idle (tests/unit/auth/test_authenticate.py).
    """
    loaded = load(chunk_cookies(chunks_of(sealed_session({**REAL_SESSION, "seen": seen}))))
    assert loaded is not None
    assert loaded.seen_at is None  # unreadable activity time: treat as idle, never crash


@pytest.mark.parametrize("cookie", ["\udcff", "é" * 43, "x", "a" * 44, "a" * 42 + "!"])
def test_a_redis_session_cookie_not_of_our_shape_is_no_session(cookie):
    """Found by fuzzing: `Cookie: _gw_session=\\xff` (any client) reads as a lone surrogate; redis_key() encoded it: a 500."""
    from gateway.session.redis_store import RedisSessionStore

    storage = RedisSessionStore(None, BOX, NAME, secure=False, max_lifetime=3600)  # type: ignore[arg-type]  # never reached
    assert run(storage.load(CookieRequest({NAME: cookie}))) is None  # never reaches Redis (client is None)
