"""Short-lived, encrypted login-state cookies: one per sign-in attempt, keyed by `state`.

Keying by state lets several tabs sign in at once. On https the cookie is `__Host-`: it is the
only thing binding a callback to the browser that began the sign-in, and a `__Secure-` cookie
could be planted by a sibling subdomain (cookie tossing), making a victim's browser finish the
attacker's sign-in. `__Host-` demands Path=/, so the cookie rides on requests to the app too;
the proxy removes it from the Cookie header the app receives (proxy/http.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import asdict, dataclass

from aiohttp import web

from .crypto import SecretBox
from .model import finite_number
from .store import SetCookie

LIFETIME = 600  # seconds: a sign-in that takes longer starts again
MAX_PENDING = 5  # parallel sign-ins kept; older ones are dropped so cookies cannot pile up


@dataclass(frozen=True)
class LoginState:
    state: str
    nonce: str
    code_verifier: str
    return_to: str
    created_at: float


class LoginStateCookies:
    def __init__(self, box: SecretBox, base_name: str, secure: bool) -> None:
        self.box = box
        self.base_name = f"__Host-{base_name}" if secure else base_name
        self.secure = secure
        # Only names we could have set count as pending: a client may send any name with our prefix,
        # and deleting one Set-Cookie cannot carry (e.g. `_login_(`) would raise.
        self._pending_name = re.compile(re.escape(self.base_name) + "_[0-9a-f]{16}")

    def name_for(self, state: str) -> str:
        return f"{self.base_name}_{hashlib.sha256(state.encode()).hexdigest()[:16]}"

    def save(self, request: web.BaseRequest, login: LoginState) -> list[SetCookie]:
        """The cookie for a new sign-in attempt, and deletions of the oldest pending ones beyond MAX_PENDING."""
        pending = sorted(
            (name for name in request.cookies if self._pending_name.fullmatch(name)),
            key=lambda name: self._created(request.cookies[name], name),
        )
        dropped = [SetCookie(name, None, secure=self.secure) for name in pending[: max(0, len(pending) - MAX_PENDING + 1)]]
        name = self.name_for(login.state)
        sealed = self.box.seal(json.dumps(asdict(login)).encode(), name.encode())
        return [*dropped, SetCookie(name, sealed, LIFETIME, self.secure)]

    def _created(self, sealed: str, name: str) -> float:
        opened = self.box.open(sealed, name.encode())
        try:
            return float(json.loads(opened)["created_at"]) if opened else 0.0
        except (ValueError, KeyError, TypeError):
            return 0.0

    def load(self, request: web.BaseRequest, state: str) -> LoginState | None:
        """The login this `state` began, if its cookie is here, intact, fresh and really for it."""
        name = self.name_for(state)
        sealed = request.cookies.get(name)
        opened = self.box.open(sealed, name.encode()) if sealed else None
        if opened is None:
            return None
        try:
            login = LoginState(**json.loads(opened))
        except (ValueError, TypeError):
            return None
        if not _well_typed(login) or not hmac.compare_digest(login.state.encode(), state.encode()):
            return None
        if time.time() - login.created_at > LIFETIME:
            return None
        return login

    def clear(self, state: str) -> list[SetCookie]:
        return [SetCookie(self.name_for(state), None, secure=self.secure)]


def _well_typed(login: LoginState) -> bool:
    """A sealed login state is ours, but JSON carries no types: check them before use."""
    strings = (login.state, login.nonce, login.code_verifier, login.return_to)
    return all(isinstance(v, str) for v in strings) and finite_number(login.created_at) is not None
