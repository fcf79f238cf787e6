"""python -m gateway demo: local Cognito on :9000, the demo app on :8000, the gateway on :8080.

Everything runs in one process; Ctrl-C stops all three.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web

from ..config import load_config
from ..idp.app import create_idp_app
from ..idp.config import load_idp_config
from ..server import run_until_signalled, start_gateway
from .upstream import create_demo_app

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


async def _serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway demo")
    parser.add_argument("--config", default=str(CONFIG_DIR / "demo.yaml"), help="the gateway's config")
    parser.add_argument("--idp-config", default=str(CONFIG_DIR / "idp.yaml"), help="the local Cognito's config")
    parser.add_argument("--upstream-port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    idp_config = load_idp_config(args.idp_config)
    env = {"UPSTREAM_URL": f"http://127.0.0.1:{args.upstream_port}", "COGNITO_ISSUER": idp_config.issuer_url}
    config = load_config(args.config, env={**env, "COGNITO_IDENTITY_ENDPOINT": idp_config.base_url})

    async def start() -> list[web.AppRunner]:
        idp = await _serve(create_idp_app(idp_config), idp_config.host, idp_config.port)
        upstream = await _serve(create_demo_app(), "127.0.0.1", args.upstream_port)
        gateway = await start_gateway(config)
        users = ", ".join(f"{user.username} / {user.password}" for user in idp_config.users)
        print(f"\n  Open {config.public_url}/  and sign in as one of: {users}")
        print(f"  Local Cognito (Hosted UI): {idp_config.base_url}   demo app (unprotected): http://127.0.0.1:{args.upstream_port}/")
        print("  Ctrl-C stops everything.\n", flush=True)
        return [gateway, upstream, idp]

    run_until_signalled(start)
    return 0
