"""python -m gateway demo: the demo app on :8000 and the gateway in front of it on :8080, in one process.

Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web

from ..config import load_config
from ..server import run_until_signalled, start_gateway
from .upstream import create_demo_app

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway demo")
    parser.add_argument("--config", default=str(CONFIG_DIR / "demo-noauth.yaml"))
    parser.add_argument("--upstream-port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = load_config(args.config, env={"UPSTREAM_URL": f"http://127.0.0.1:{args.upstream_port}"})

    async def start() -> list[web.AppRunner]:
        upstream = web.AppRunner(create_demo_app())
        await upstream.setup()
        await web.TCPSite(upstream, "127.0.0.1", args.upstream_port).start()
        gateway = await start_gateway(config)
        print(f"\n  Demo app:  http://127.0.0.1:{args.upstream_port}/  (direct)")
        print(f"  Gateway:   http://localhost:{config.listen_port}/   <- open this\n", flush=True)
        return [gateway, upstream]

    run_until_signalled(start)
    return 0
