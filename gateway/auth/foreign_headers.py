"""Identity headers of other systems, which no client may send through the gateway.

The app behind the gateway is often a legacy one that was once behind another proxy, or that
trusts `Remote-User` because a web server used to set it. The gateway never sets these headers,
so a client-sent one can only be a forgery: it is removed from every request, on every path.

Names are compared normalized (lower case, every other character than a letter or digit read as
`-`), because CGI, WSGI, PHP and Rack servers read `X_Auth_Request_User`, `X.Auth.Request.User`
and `X-Auth-Request-User` as the same variable.
"""

from __future__ import annotations

from typing import Iterable

from ..proxy.headers import normalized

# Whole families, by prefix: every header a system of that name sets.
FOREIGN_PREFIXES: tuple[str, ...] = (
    "x-auth-request-",  # oauth2-proxy (nginx auth_request mode)
    "x-amzn-oidc-",  # AWS ALB authenticate-cognito / authenticate-oidc
    "x-pomerium-",  # Pomerium (x-pomerium-jwt-assertion, x-pomerium-claim-*)
    "x-webauth-",  # Grafana auth proxy (x-webauth-user, -email, -name, -role)
    "x-vouch-",  # Vouch Proxy (x-vouch-user, x-vouch-idp-claims-*)
    "remote-",  # Apache-style / Authelia (remote-user, remote-groups, remote-email, remote-name)
    "x-remote-",  # the same with an x- (x-remote-user, …)
    "x-goog-authenticated-user-",  # Google IAP
    "x-ms-client-principal",  # Azure App Service authentication (…-name, -id, -idp)
    "x-ms-token-",  # Azure App Service token store
    "cf-access-",  # Cloudflare Access
    "x-authentik-",  # authentik
    "x-consumer-",  # Kong (x-consumer-id, -username, -custom-id, -groups)
    "oidc-",  # Apache mod_auth_openidc (OIDC_CLAIM_*, OIDC_access_token, …)
    "shib-",  # Shibboleth SP
)

# Single names that belong to no family above.
FOREIGN_NAMES: frozenset[str] = frozenset(
    {
        # oauth2-proxy's upstream headers (the gateway's own defaults are among them)
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-forwarded-access-token",
        "gap-auth",
        "gap-signature",
        # Keycloak Gatekeeper / Louketo
        "x-auth-userid",
        "x-auth-username",
        "x-auth-email",
        "x-auth-roles",
        "x-auth-groups",
        "x-auth-subject",
        "x-auth-audience",
        "x-auth-expiresin",
        # Google IAP's signed header, Kong's OIDC plugin, common hand-rolled names
        "x-goog-iap-jwt-assertion",
        "x-credential-identifier",
        "x-anonymous-consumer",
        "x-userinfo",
        "x-id-token",
        "x-user",
        "x-user-id",
        "x-user-email",
        "x-username",
        "x-email",
    }
)

# Headers that make an app route a request to another path (Symfony, Zend, Yii: CVE-2018-14773):
# `/public/x` with `X-Original-URL: /admin` would reach the admin handler past the rule for /admin.
PATH_OVERRIDE_NAMES: frozenset[str] = frozenset({"x-original-url", "x-rewrite-url"})

# Headers that make an app treat a request as another method (an allowed GET becomes a DELETE).
METHOD_OVERRIDE_NAMES: frozenset[str] = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})


class HeaderMatcher:
    """Exact names and `prefix*` patterns, compared normalized."""

    def __init__(self, names: Iterable[str], prefixes: Iterable[str]) -> None:
        self.names = frozenset(normalized(n) for n in names)
        self.prefixes = tuple(normalized(p) for p in prefixes)

    @classmethod
    def of_patterns(cls, patterns: Iterable[str]) -> "HeaderMatcher":
        """`X-Corp-User` is one name; `X-Corp-*` every name that starts so."""
        patterns = list(patterns)
        return cls(
            [p for p in patterns if not p.endswith("*")],
            [p[:-1] for p in patterns if p.endswith("*")],
        )

    def __call__(self, name: str) -> bool:
        name = normalized(name)
        return name in self.names or name.startswith(self.prefixes)
