"""python -m gateway.demo [--host H] [--port N]: the demo upstream app alone."""

import argparse

from aiohttp import web

from .upstream import create_demo_app

parser = argparse.ArgumentParser(prog="python -m gateway.demo", description="the demo 'legacy' upstream app")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8000)
args = parser.parse_args()
web.run_app(create_demo_app(), host=args.host, port=args.port)
