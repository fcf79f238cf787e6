"""tests/unit mirrors gateway/, so that a module without a unit test shows.

A module is named by a unit test module when that test sits at its mirrored path
(gateway/auth/refresh.py -> tests/unit/auth/test_refresh.py) or imports it (`import gateway.x.y`,
`from gateway.x.y import …`, `from gateway.x import y`). An import is a low bar (a test importing
an exception class names errors.py): this finds modules that no unit test touches at all, not how
well the others are tested.

Modules covered only by the integration tests (or not at all) are in ALLOWLIST, each with the
test files that cover it. The allowlist only shrinks: an allowlisted module that gains a unit
test fails test_allowlisted_modules_with_a_unit_test_leave_the_allowlist until it is removed.
Entries for modules that do not exist (yet, or any more) are ignored, so a module being written
or removed elsewhere does not break this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gateway"
UNIT = ROOT / "tests" / "unit"
NOT_MODULES = {"__init__", "__main__"}

# module -> the tests that cover it instead (paths under tests/). Keep the reason in the comment.
ALLOWLIST: dict[str, tuple[str, ...]] = {
    # Wiring: config -> middleware -> proxy; every integration test builds an app through it.
    "gateway/app.py": ("integration/test_proxy_http.py", "integration/test_sign_in.py"),
    # `Authorization: Bearer` on rules with bearer: true, against the local Cognito's access tokens.
    "gateway/auth/bearer.py": ("integration/test_rules_identity.py", "integration/test_sign_in_attacks.py"),
    # Stripping other systems' identity headers: replayed advisories, and behind real nginx/Caddy/Traefik.
    "gateway/auth/foreign_headers.py": ("integration/test_advisories.py", "interop/test_forward_auth.py"),
    # /oauth2/auth for nginx auth_request, Caddy forward_auth, Traefik ForwardAuth.
    "gateway/auth/forward.py": ("integration/test_forward_auth_endpoint.py", "interop/test_forward_auth.py"),
    # /oauth2/start, /callback, /sign_out, /userinfo: the sign-in flow through the Hosted UI.
    "gateway/auth/login.py": ("integration/test_sign_in.py", "integration/test_sign_in_attacks.py"),
    # Cross-instance single flight in Redis: two gateway processes sharing Redis make one call;
    # Redis failing under a running gateway. (The Refresher's side of the hook: tests/unit/auth/test_refresh.py.)
    "gateway/auth/shared_refresh.py": ("integration/test_refresh.py", "integration/test_faults.py"),
    # verify_tokens: the RP certification's negative cases; also exercised (not imported) through the
    # Refresher by tests/unit/auth/test_refresh.py (sub mismatch, failed verification, kept refresh token).
    "gateway/auth/tokens.py": ("integration/test_rp_conformance.py", "integration/test_sign_in.py"),
    # rule -> authenticate -> decide, and the refusal responses, wired to aiohttp requests. Its parts have
    # unit tests (auth/test_decide.py, test_authenticate.py, test_identity.py); the gate itself is
    # covered by the rules and forward-auth tests.
    "gateway/auth/gate.py": ("integration/test_rules_identity.py", "integration/test_forward_auth_endpoint.py"),
    # Request-head and keep-alive deadlines (Slowloris).
    "gateway/connections.py": ("integration/test_connection_deadlines.py",),
    # NO TEST runs `python -m gateway demo`; the container test only checks the compose file names it.
    "gateway/demo/cli.py": ("integration/test_container.py",),
    # The recording upstream every integration test proxies to (tests/fixtures/servers.py serves it).
    "gateway/demo/upstream.py": ("integration/test_proxy_http.py", "interop/test_forward_auth.py"),
    # Config readers of the local Cognito: through its config's problem lines (tests/unit/idp/test_config.py
    # imports gateway.idp.config, which uses them, not _checks itself).
    "gateway/idp/_checks.py": ("integration/test_idp_admin.py",),
    # The local Cognito's applications and pages: driven over HTTP by an independent client and a browser.
    "gateway/idp/admin.py": ("integration/test_idp_admin.py", "soak/test_idp_refresh_stats.py"),
    "gateway/idp/app.py": ("integration/test_idp_oauth.py", "integration/test_idp_hosted_ui.py"),
    "gateway/idp/cli.py": ("integration/test_idp_admin.py",),
    "gateway/idp/flow.py": ("integration/test_idp_hosted_ui.py",),
    "gateway/idp/login.py": ("integration/test_idp_hosted_ui.py", "e2e/test_chromium_sign_in.py"),
    "gateway/idp/oauth.py": ("integration/test_idp_oauth.py", "integration/test_idp_aws_jwt_verify.py"),
    "gateway/idp/pages.py": ("integration/test_idp_hosted_ui.py",),
    "gateway/idp/state.py": ("integration/test_idp_admin.py",),
    # Bounded reads of provider answers: huge and never-ending bodies from a misbehaving provider.
    "gateway/oidc/bodies.py": ("integration/test_rp_conformance.py",),
    # Cognito shorthand and discovery: the local Cognito, a misbehaving OP, npm oidc-provider.
    "gateway/oidc/endpoints.py": ("integration/test_rp_conformance.py", "interop/test_oidc_provider.py"),
    # Loading endpoints + JWKS, retried while the provider is down.
    "gateway/oidc/provider.py": ("integration/test_faults.py", "integration/test_rp_conformance.py"),
    "gateway/proxy/http.py": ("integration/test_proxy_http.py", "integration/test_lifecycle.py"),
    "gateway/proxy/websocket.py": ("integration/test_websocket.py",),
    # `check`'s masked config.
    "gateway/report.py": ("integration/test_cli.py",),
    # JSON/HTML error responses: every refusal in the integration tests goes through it.
    "gateway/responses.py": ("integration/test_hardening.py", "integration/test_faults.py"),
}

# Allowlisted modules exempt from "leave the allowlist" while a rewrite is in flight (a unit test may
# still import them before it lands). Empty: the auth core rewrite is in.
REWRITE_IN_PROGRESS: set[str] = set()


def _modules() -> set[str]:
    """gateway/**.py inside packages (every folder up to gateway/ has an __init__.py), as paths from ROOT."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        folders = path.relative_to(PACKAGE).parents
        if path.stem in NOT_MODULES or not all((PACKAGE / folder / "__init__.py").exists() for folder in folders):
            continue
        found.add(path.relative_to(ROOT).as_posix())
    return found


def _test_files() -> list[Path]:
    return sorted(UNIT.rglob("test_*.py"))


def _dotted(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def _mirror(module: str) -> Path:
    """gateway/auth/refresh.py -> tests/unit/auth/test_refresh.py"""
    relative = Path(module).relative_to("gateway")
    return UNIT / relative.parent / f"test_{relative.name}"


def _imported(test_file: Path) -> set[str]:
    """Dotted names a test module imports, with `from a import b` counted as both `a` and `a.b`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(test_file.read_text(encoding="utf-8"), str(test_file))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _named() -> set[str]:
    """Modules some unit test names: by its mirrored path or by an import."""
    imported = set().union(*(_imported(f) for f in _test_files()))
    return {m for m in _modules() if _dotted(m) in imported or _mirror(m).exists()}


def test_every_module_has_a_unit_test_or_is_allowlisted() -> None:
    missing = sorted(_modules() - _named() - set(ALLOWLIST))
    assert not missing, (
        "modules no unit test names (add a test at the mirrored path, or an ALLOWLIST entry naming the"
        " integration tests that cover it):\n" + "\n".join(f"  {m} -> {_mirror(m).relative_to(ROOT)}" for m in missing)
    )


def test_allowlisted_modules_with_a_unit_test_leave_the_allowlist() -> None:
    tested = sorted((set(ALLOWLIST) - REWRITE_IN_PROGRESS) & _named())  # modules that do not exist are in neither
    assert not tested, "remove from ALLOWLIST in tests/unit/test_layout.py, they have unit tests now:\n" + "\n".join(
        f"  {m}" for m in tested
    )


def test_the_allowlist_names_tests_that_exist() -> None:
    gone = sorted(f"{m}: tests/{t}" for m, tests in ALLOWLIST.items() for t in tests if not (ROOT / "tests" / t).is_file())
    assert not gone, "ALLOWLIST names test files that do not exist:\n" + "\n".join(f"  {g}" for g in gone)


def test_unit_test_folders_mirror_gateway_packages() -> None:
    """tests/unit/<x>/ exists only for a package gateway/<x>/, and is itself a package (tests are imported as tests.unit.x…)."""
    stray = []
    for folder in sorted(p for p in UNIT.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        relative = folder.relative_to(UNIT)
        if not (PACKAGE / relative / "__init__.py").exists() or not (folder / "__init__.py").exists():
            stray.append(f"  tests/unit/{relative.as_posix()}")
    assert not stray, "folders under tests/unit that are not a mirrored package with an __init__.py:\n" + "\n".join(stray)


def test_rewrite_exemptions_are_allowlisted() -> None:
    assert REWRITE_IN_PROGRESS <= set(ALLOWLIST)


def test_the_check_sees_modules_and_tests() -> None:
    """Not vacuous: it finds the package's modules, skips __init__/__main__, and sees both kinds of naming."""
    modules = _modules()
    assert {"gateway/auth/refresh.py", "gateway/config.py", "gateway/oidc/verify.py"} <= modules
    assert not any(Path(m).stem in NOT_MODULES for m in modules)
    assert _mirror("gateway/auth/refresh.py") == UNIT / "auth" / "test_refresh.py"
    named = _named()
    assert "gateway/auth/refresh.py" in named  # mirrored path
    assert "gateway/auth/paths.py" in named and "gateway/auth/rules.py" in named  # imported by auth/test_paths_rules.py
    assert "gateway/ops/access_log.py" in named and "gateway/demo/cli.py" not in named
    # the auth core's parts by their mirrored unit tests; the gate only through the integration tests
    assert {"gateway/auth/decide.py", "gateway/auth/authenticate.py", "gateway/auth/identity.py", "gateway/auth/principal.py"} <= named
    assert "gateway/auth/gate.py" not in named
