"""Typed application state of the local Cognito (aiohttp `AppKey`s) and the test hooks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from .config import IdpConfig
from .keys import KeyRing
from .store import Store


@dataclass
class Fault:
    """A provider fault for the token endpoint, injected through `/_admin/faults`."""

    mode: str  # "error": answer `status` at once; "hang": wait `seconds`, then answer normally
    status: int = 503
    seconds: float = 30.0
    remaining: int | None = None  # None: until cleared


@dataclass
class Hooks:
    token_calls: Counter[str] = field(default_factory=Counter)
    userinfo_calls: int = 0
    # Successful refresh_token grants (tokens issued) by username and by client id: soak tests
    # check "one refresh per user per expiry" with these.
    refresh_by_user: Counter[str] = field(default_factory=Counter)
    refresh_by_client: Counter[str] = field(default_factory=Counter)
    identity_calls: Counter[str] = field(default_factory=Counter)  # Cognito Identity calls by operation
    fault: Fault | None = None

    def take_fault(self) -> Fault | None:
        fault = self.fault
        if fault is None:
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.fault = None
        return fault


CONFIG = web.AppKey("idp_config", IdpConfig)
KEYS = web.AppKey("idp_keys", KeyRing)
STORE = web.AppKey("idp_store", Store)
HOOKS = web.AppKey("idp_hooks", Hooks)
