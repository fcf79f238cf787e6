"""`python -m gateway idp --config FILE [--port N] [--host H]`: the local Cognito on its own."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from gateway.errors import ConfigError

from .app import create_idp_app
from .config import load_idp_config


def main(argv: list[str]) -> int:
    """Run until Ctrl-C; exit 1 with one line per problem when the config is invalid."""
    parser = argparse.ArgumentParser(prog="python -m gateway idp", description="Local Cognito user pool")
    parser.add_argument("--config", required=True, help="YAML file, e.g. config/idp.yaml")
    parser.add_argument("--port", type=int, help="override the port of `listen`")
    parser.add_argument("--host", help="override the host of `listen`")
    args = parser.parse_args(argv)
    try:
        config = load_idp_config(args.config).with_listen(args.host, args.port)
        app = create_idp_app(config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{args.config}: {problem}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    users = ", ".join(u.username for u in config.users) or "(none)"
    print(f"Local Cognito {config.user_pool_id}: issuer {config.issuer_url}", flush=True)
    print(f"  Hosted UI  {config.base_url}/oauth2/authorize   users: {users}", flush=True)
    if config.admin_api:
        print(f"  Test hooks {config.base_url}/_admin/ (unauthenticated: keep this local)", flush=True)
    web.run_app(app, host=config.host, port=config.port, print=None, access_log=None)
    return 0
