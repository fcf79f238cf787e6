"""The one exception hierarchy of the gateway: every error a caller can catch."""

import os


class GatewayError(Exception):
    """Base class for all errors raised by the gateway."""


class ConfigError(GatewayError):
    """The configuration is invalid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ProviderError(GatewayError):
    """The identity provider could not be reached or answered badly."""


class TokenError(GatewayError):
    """A token failed verification; `reason` is short and safe to show."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SessionError(GatewayError):
    """A session could not be loaded or stored."""


def cannot_listen(key: str, host: str, port: int, error: OSError) -> SystemExit:
    """A port taken (or not ours to bind) at start: one line naming the config key, not a traceback."""
    reason = os.strerror(error.errno) if error.errno else str(error)
    return SystemExit(f"{key}: cannot listen on {host}:{port}: {reason}")
