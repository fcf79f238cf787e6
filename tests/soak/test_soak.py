"""The soak (bench/soak.py) in short: 100 users per gateway, tokens living 6 s, about 20 s of load.

`make soak` runs the full one (1,000 users, 10 s tokens, 60 s measured after a warm-up). Here two
soaks run side by side, each with its own local Cognito, upstream and gateway process: one with
refresh-token rotation (single-use refresh tokens: a duplicate refresh would sign the user out) and
one without (Cognito's default: a duplicate refresh goes unnoticed except by counting, and a stale
reused refresh result would hand back expired tokens). Same assertions as the full soak.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_soak", ROOT / "bench" / "soak.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


soak = _load_soak()


def _children_started_in(workdir: Path) -> list[str]:
    """Processes still running whose command line names this soak's work directory."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in text:
            found.append(text)
    return found


@pytest.mark.slow  # ~30 s of two busy CPU cores: in `make test`, not in `make test-fast`
@pytest.mark.timeout(90)
async def test_short_soak_with_and_without_rotation(tmp_path: Path) -> None:
    common = dict(users=100, token_lifetime=6, before_expiry=2.0, interval=1.0, warmup=8.0, duration=12.0)
    runs = {"rotation": soak.Settings(rotation=True, **common), "no rotation": soak.Settings(rotation=False, **common)}
    workdirs = {name: tmp_path / name.replace(" ", "-") for name in runs}
    for path in workdirs.values():
        path.mkdir()
    started = time.monotonic()
    reports = await asyncio.gather(*(soak.soak(settings, workdirs[name]) for name, settings in runs.items()))
    elapsed = time.monotonic() - started
    for (name, settings), report in zip(runs.items(), reports):
        message = f"{name}:\n{report.summary()}"
        assert report.ok, message
        assert report.failures == 0 and report.requests > settings.users * 15, message
        # Every user was refreshed about every (lifetime - before_expiry) seconds, and the IdP agrees.
        assert report.refreshes_seen == report.refreshes_expected >= settings.users * 3, message
        assert report.authorization_codes == settings.users, message
    for path in workdirs.values():
        assert not _children_started_in(path), "a soak process outlived the soak"
    assert elapsed < 40, f"the short soak took {elapsed:.0f} s"


def _user(name: str, *tokens: tuple[int, int]) -> object:
    user = soak.SimUser(name)
    for index, (iat, exp) in enumerate(tokens):
        user.tokens[f"{name}-{index}"] = soak.TokenSeen(f"{name}-{index}", iat, exp, float(iat), float(iat))
    return user


def test_refresh_check_accepts_one_refresh_per_expiry() -> None:
    settings = soak.Settings(token_lifetime=10, before_expiry=3.0)
    users = [_user("a", (100, 110), (107, 117), (115, 125)), _user("b", (101, 111))]
    assert soak.check_refreshes(users, {"a": 2}, settings) == (2, [])


def test_refresh_check_finds_extra_missing_and_duplicate_refreshes() -> None:
    settings = soak.Settings(token_lifetime=10, before_expiry=3.0)
    # Two grants for the same expiring token, both tokens forwarded: counts agree, timing does not.
    duplicate = _user("dup", (100, 110), (107, 117), (107, 117))
    expected, problems = soak.check_refreshes([duplicate], {"dup": 2}, settings)
    assert expected == 2 and any("early or duplicate" in p for p in problems)
    # A grant whose token was never used (a lost or wasted refresh).
    expected, problems = soak.check_refreshes([_user("lost", (100, 110), (107, 117))], {"lost": 2}, settings)
    assert any("2 refresh grants at the IdP for 2 distinct access tokens" in p for p in problems)
    # A token the IdP did not issue by refresh (e.g. a second sign-in), and grants for a stranger.
    _, problems = soak.check_refreshes([_user("c", (100, 110), (107, 117))], {"zed": 1}, settings)
    assert any("0 refresh grants" in p for p in problems) and any("not in the soak" in p for p in problems)
    # Refreshed too early: long before the previous token's window.
    _, problems = soak.check_refreshes([_user("early", (100, 110), (102, 112))], {"early": 1}, settings)
    assert any("early or duplicate" in p for p in problems)
