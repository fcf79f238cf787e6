"""Command line: python -m gateway run | check | doctor | sessions | idp | demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable

from .config import Config, load_config
from .errors import ConfigError
from .ops import logs
from .report import describe_config, describe_endpoints, describe_rules
from .risks import risks


def _config_path(args: argparse.Namespace) -> str:
    path = args.config or os.environ.get("GATEWAY_CONFIG")
    if not path:
        raise SystemExit("error: give --config FILE or set GATEWAY_CONFIG")
    return path


def cmd_run(args: argparse.Namespace) -> int:
    from .server import serve

    config = _load(_config_path(args))
    if config is None:
        return 1
    logs.configure(config.logging)
    serve(config, workers=args.workers)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    path = _config_path(args)
    config = _load(path)
    if config is None:
        return 1
    print(describe_config(config))
    if config.provider is not None:
        print(asyncio.run(describe_endpoints(config.provider)))
        print(describe_rules(config))
    warnings = risks(config)
    for risk in warnings:
        print(risk.line(), file=sys.stderr)
    print(f"{path}: OK" + (f" ({len(warnings)} warning{'s' if len(warnings) > 1 else ''})" if warnings else ""))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import diagnose, report

    path = _config_path(args)
    config = _load(path)
    if config is None:
        return 1
    lines, problems = report(config, asyncio.run(diagnose(config)))
    for line in lines:
        print(line)
    print(f"{path}: " + (f"{problems} problem{'s' if problems > 1 else ''}" if problems else "OK"))
    return 1 if problems else 0


def cmd_sessions(args: argparse.Namespace) -> int:
    from .sessions_cli import run

    config = _load(_config_path(args))
    if config is None:
        return 1
    return run(config, args.action, args.user)


def _load(path: str) -> Config | None:
    """The config, or None once every problem is printed, one line each."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["idp"]:
        from .idp.cli import main as idp_main

        return idp_main(argv[1:])
    if argv[:1] == ["demo"]:
        from .demo.cli import main as demo_main

        return demo_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m gateway", description="Authentication gateway for AWS Cognito")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve the gateway")
    run.add_argument("--config", help="YAML config file (or GATEWAY_CONFIG)")
    run.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    run.set_defaults(func=cmd_run)
    check = commands.add_parser("check", help="validate a config and print what it resolves to")
    check.add_argument("--config", help="YAML config file (or GATEWAY_CONFIG)")
    check.set_defaults(func=cmd_check)
    doctor = commands.add_parser("doctor", help="ask the provider whether this app client is set up right")
    doctor.add_argument("--config", help="YAML config file (or GATEWAY_CONFIG)")
    doctor.set_defaults(func=cmd_doctor)
    sessions = commands.add_parser("sessions", help="a user's sessions across the fleet (needs Redis): list, or revoke them all")
    actions = sessions.add_subparsers(dest="action", required=True)
    for action, text in (("list", "show a user's sessions (no token values)"), ("revoke", "end every session of a user, on every instance")):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("--config", help="YAML config file (or GATEWAY_CONFIG)")
        sub.add_argument("--user", required=True, metavar="USERNAME_OR_SUB", help="a username (as signed in) or a sub")
        sub.set_defaults(func=cmd_sessions)
    commands.add_parser("idp", help="run the local Cognito (python -m gateway idp --help)")
    commands.add_parser("demo", help="local Cognito + demo app + gateway on one laptop")
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.func  # cmd_run, cmd_check, cmd_doctor or cmd_sessions, set by set_defaults
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
