"""The local Cognito: a user pool's Hosted UI and OAuth2 endpoints, for the demo and the tests."""

from .app import create_idp_app
from .config import IdpConfig, load_idp_config, parse_idp_config

__all__ = ["IdpConfig", "create_idp_app", "load_idp_config", "parse_idp_config"]
