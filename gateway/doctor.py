"""`python -m gateway doctor`: ask the provider whether this app client is set up right, without a browser.

Each check makes the request the gateway would make and reads the provider's answer:

- discovery and JWKS: reachable, this issuer's, with a key for an allowed algorithm;
- authorize: the sign-in URL the gateway builds (PKCE, state, nonce), not followed. A known client and
  a registered callback get the sign-in page (Cognito: a 302 to its /login); an unknown client or an
  unregistered redirect_uri get an error page on the provider (Cognito: a 302 to its own
  `/error?error=redirect_mismatch|invalid_request`; the local Cognito: a 400 page), never the callback;
- the client secret: a made-up code sent to the token endpoint as the gateway sends codes. `invalid_grant`
  means the client was authenticated (only the code is wrong); `invalid_client` means it was not;
- sign-out: the URL the gateway sends browsers to. Cognito redirects to `logout_uri` only when it is
  a registered sign-out URL; otherwise it shows an error or its sign-in page;
- the clock: the provider's `Date` header against ours, since tokens are checked with a few seconds' leeway;
- Redis, when the config uses one (`session.store: redis`, or a `redis_url` with cookie sessions): PING.

Nothing the provider answers is followed, and nothing secret is printed: every line passes through
`redact` with the config's secrets, in case a provider echoes one back.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import urlencode

import aiohttp

from . import doctor_answers as answers
from .doctor_answers import Answer, Finding, Verdict, fail, ok, skip
from .auth.login import s256  # the gateway's own PKCE challenge
from .config import Config, ProviderConfig, ProviderKind, SessionConfig
from .errors import ProviderError
from .oidc.client import GrantError, OidcClient
from .oidc.endpoints import ProviderEndpoints, cognito_endpoints, from_discovery
from .oidc.profile import profile_for
from .oidc.verify import VerifyPolicy
from .session.redis_client import REDIS_ERRORS, connect

# The leeway the gateway verifies token times with (exp, iat, nbf): a clock off by more breaks sign-ins.
CLOCK_LEEWAY = VerifyPolicy(issuer="", client_ids=()).leeway
CLOCK_WARNING = 2.0  # seconds; a Date header has a resolution of one second, so less is noise


class Probe:
    """The HTTP client of one doctor run: no cookies, no redirects followed, every answer's clock noted."""

    def __init__(self, http: aiohttp.ClientSession, timeout: float) -> None:
        self.http = http
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.clocks: list[answers.ClockSample] = []

    async def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        """The provider's answer; ProviderError when it cannot be reached in time."""
        try:
            sent = asyncio.get_running_loop().time()
            async with self.http.request(method, url, timeout=self.timeout, allow_redirects=False, **kwargs) as response:
                sample = answers.clock_sample(url, response.headers, asyncio.get_running_loop().time() - sent)
                body = await answers.read_some(response)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ProviderError(f"cannot reach {url.split('?')[0]} ({exc.__class__.__name__})") from None
        if sample is not None:
            self.clocks.append(sample)
        return Answer.of(response, url, body)


def redirect_uri(config: Config) -> str:
    """The callback the gateway sends: the same expression as auth/login.py's SignIn."""
    return f"{config.public_url}{config.endpoints_prefix}/callback"


async def check_discovery(probe: Probe, provider: ProviderConfig) -> tuple[list[Finding], ProviderEndpoints | None]:
    """Discovery and JWKS; the endpoints the other checks use (None when they cannot be known)."""
    derived = cognito_endpoints(provider.cognito) if provider.cognito is not None else None
    issuer = derived.issuer if derived is not None else str(provider.issuer)
    url = f"{issuer}/.well-known/openid-configuration"
    endpoints = derived
    hint = " — check provider.cognito (region, user_pool_id)" if derived is not None else " — check provider.issuer"
    try:
        answer = await probe.request("GET", url)
        document = answer.json_object()
        if answer.status != 200 or document is None:
            raise ProviderError(f"{url} answered {answer.status}{' (not a JSON object)' if answer.status == 200 else ''}{hint}")
        found = from_discovery(document, issuer, profile_for(provider.kind))
        endpoints = derived or found
        findings = [ok("discovery", url)]
    except ProviderError as exc:
        findings = [fail("discovery", str(exc))]
    if endpoints is None:
        return [*findings, skip("jwks", "needs the discovery document")], None
    return [*findings, await check_jwks(probe, endpoints.jwks_uri, provider.algorithms)], endpoints


async def check_jwks(probe: Probe, url: str, algorithms: tuple[str, ...]) -> Finding:
    try:
        answer = await probe.request("GET", url)
    except ProviderError as exc:
        return fail("jwks", str(exc))
    document = answer.json_object()
    if answer.status != 200 or document is None:
        return fail("jwks", f"{url} answered {answer.status}{'' if answer.status != 200 else ' (not a JSON object)'}")
    usable, others = answers.signing_keys(document, algorithms)
    if not usable:
        seen = f"it has {', '.join(others)}" if others else "it has no signing key"
        return fail("jwks", f"no key for provider.algorithms ({', '.join(algorithms)}) at {url}: {seen}")
    return ok("jwks", f"{len(usable)} signing key{'s' if len(usable) > 1 else ''} ({', '.join(sorted(set(usable)))}) at {url}")


async def check_authorize(probe: Probe, config: Config, provider: ProviderConfig, endpoints: ProviderEndpoints) -> list[Finding]:
    """client_id and callback: the sign-in request the gateway sends, as /oauth2/start builds it."""
    callback = redirect_uri(config)
    params = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": callback,
        "scope": " ".join(provider.scopes),
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "code_challenge": s256(secrets.token_urlsafe(64)),
        "code_challenge_method": "S256",
    }
    try:
        answer = await probe.request("GET", f"{endpoints.authorize}?{urlencode(params)}")
    except ProviderError as exc:
        hint = " — check provider.cognito.domain (the Hosted UI domain)" if provider.cognito is not None else ""
        return [fail("authorize", f"{exc}{hint}"), skip("callback", "the authorize endpoint did not answer")]
    return answers.read_authorize(answer, endpoints.authorize, provider.client_id, callback)


async def check_secret(probe: Probe, config: Config, provider: ProviderConfig, endpoints: ProviderEndpoints) -> Finding:
    """A made-up code sent as the gateway sends codes (Basic auth with a secret): which error comes back?"""
    client = OidcClient(probe.http, endpoints, provider.client_id, provider.client_secret, provider.timeout)
    try:
        await client.exchange_code(secrets.token_urlsafe(32), redirect_uri(config), secrets.token_urlsafe(64))
    except GrantError as exc:
        return answers.read_token_error(exc.error, exc.status, provider.client_id, has_secret=bool(provider.client_secret))
    except ProviderError as exc:
        return fail("secret", f"the token endpoint {endpoints.token} failed: {exc}")
    return fail("secret", "the token endpoint issued tokens for a made-up code: this is not a provider to trust")


async def check_sign_out(probe: Probe, config: Config, provider: ProviderConfig, endpoints: ProviderEndpoints) -> Finding:
    """The provider's logout with the gateway's return URL, exactly as the gateway's sign-out sends it."""
    if provider.sign_out_url:
        return skip("sign-out", f"provider.sign_out_url is set: browsers go to {provider.sign_out_url}")
    if not endpoints.logout:
        return skip("sign-out", "the provider publishes no end_session_endpoint: the gateway signs out of itself only")
    back = f"{config.public_url}/"
    url = f"{endpoints.logout}?{profile_for(provider.kind).sign_out_query(provider.client_id, back, None)}"
    try:
        answer = await probe.request("GET", url)
    except ProviderError as exc:
        return fail("sign-out", str(exc))
    # A generic provider may ask the user to confirm first; Cognito always redirects at once.
    confirmation_page_ok = provider.kind is ProviderKind.OIDC
    return answers.read_sign_out(answer, endpoints.logout, provider.client_id, back, confirmation_page_ok)


def check_clock(samples: list[answers.ClockSample]) -> Finding:
    if not samples:
        return skip("clock", "no answer of the provider carried a Date header")
    best = min(samples, key=lambda sample: sample.round_trip)  # the least uncertain
    skew = best.skew
    where = "behind" if skew > 0 else "ahead of"
    text = f"this machine is {abs(skew):.1f} s {where} {best.host} (its Date header)"
    if abs(skew) > CLOCK_LEEWAY:
        return fail("clock", f"{text}: beyond the {CLOCK_LEEWAY:g} s the gateway allows on token times, sign-ins fail — sync it (NTP)")
    if abs(skew) > CLOCK_WARNING:
        return Finding(Verdict.WARN, "clock", f"{text}: within the {CLOCK_LEEWAY:g} s leeway, but sync it (NTP)")
    shown = skew if abs(skew) >= 0.05 else 0.0  # no "-0.0 s"
    return ok("clock", f"in sync with {best.host} ({shown:+.1f} s by its Date header)")


async def check_redis(session: SessionConfig) -> Finding:
    """PING through the client the gateway builds: one server, the Sentinels' master, or a cluster."""
    shown = answers.without_password(session.redis_url)
    if session.redis_sentinels:
        shown += " via " + ", ".join(f"{host}:{port}" for host, port in session.redis_sentinels)
    try:
        client = connect(session)
        try:
            await client.ping()
        finally:
            await client.aclose()
    except REDIS_ERRORS as exc:
        return fail("redis", f"{shown} does not answer PING ({exc.__class__.__name__})")
    return ok("redis", f"{shown} answers PING")


async def diagnose(config: Config) -> list[Finding]:
    """Every finding about this config's provider (and Redis), in a fixed order."""
    provider = config.provider
    if provider is None:
        findings = [skip("provider", "none configured: sign-in is off")]
    else:
        findings = await _provider_findings(provider, config)
    if config.session.uses_redis:
        findings.append(await check_redis(config.session))
    return findings


async def _provider_findings(provider: ProviderConfig, config: Config) -> list[Finding]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), headers={"User-Agent": "cognito-gateway doctor"}) as http:
        probe = Probe(http, provider.timeout)
        findings, endpoints = await check_discovery(probe, provider)
        if endpoints is None:
            later = ("client_id", "callback", "secret", "sign-out")
            findings += [skip(name, "needs the provider's endpoints (discovery failed)") for name in later]
        else:
            authorize, secret, sign_out = await asyncio.gather(
                check_authorize(probe, config, provider, endpoints),
                check_secret(probe, config, provider, endpoints),
                check_sign_out(probe, config, provider, endpoints),
            )
            findings += answers.after_unknown_client([*authorize, secret, sign_out])
        findings.append(check_clock(probe.clocks))
    return findings


def report(config: Config, findings: list[Finding]) -> tuple[list[str], int]:
    """The lines to print, secrets masked, and how many findings are failures."""
    hidden = [s for s in (*config.session.secrets, config.provider.client_secret if config.provider else None) if s]
    lines = [answers.redact(finding.line(), hidden) for finding in findings]
    return lines, sum(finding.verdict is Verdict.FAIL for finding in findings)
