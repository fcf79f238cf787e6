"""The supervisor's crash policy and the drain's timing, without processes (tests/integration/test_lifecycle.py has those)."""

from __future__ import annotations

import asyncio
import signal
import time
from types import SimpleNamespace

from aiohttp import web

from gateway.config import parse_config

from gateway.ops.health import READINESS, add_health_routes
from gateway.server import CrashPolicy, Supervisor, _drain


def test_restarts_back_off_then_give_up() -> None:
    policy = CrashPolicy(window=60, limit=5, delays=(0.5, 1.0, 2.0, 4.0))
    assert [policy.restart_delay(t) for t in (0, 1, 2, 3)] == [0.5, 1.0, 2.0, 4.0]
    assert policy.restart_delay(4) is None, "the 5th exit within a minute: give up"


def test_the_last_delay_repeats_and_old_exits_are_forgotten() -> None:
    policy = CrashPolicy(window=10, limit=4, delays=(0.5, 1.0))
    assert [policy.restart_delay(t) for t in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert policy.restart_delay(100) == 0.5, "exits long ago do not count"
    assert policy.restart_delay(100.1) == 1.0


async def test_drain_marks_not_ready_then_waits_the_delay() -> None:
    app = web.Application()
    add_health_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        began = time.monotonic()
        await _drain([runner], 0.2, asyncio.Queue())
        assert app[READINESS].draining
        assert 0.19 < time.monotonic() - began < 1
    finally:
        await runner.cleanup()


async def test_a_second_signal_ends_the_delay() -> None:
    signals: asyncio.Queue[int] = asyncio.Queue()
    asyncio.get_running_loop().call_later(0.05, signals.put_nowait, signal.SIGTERM)
    began = time.monotonic()
    await _drain([], 10, signals)
    assert time.monotonic() - began < 1


def test_a_worker_that_cannot_start_is_a_crash_under_the_same_policy() -> None:
    class Unstartable:
        sentinel = -1

        def __init__(self, **_: object) -> None:
            pass

        def start(self) -> None:
            raise BlockingIOError(11, "Resource temporarily unavailable")  # fork/clone under a pids limit

    supervisor = Supervisor(parse_config({"upstreams": [{"path": "/", "url": "http://app"}]}), 2, CrashPolicy(limit=2))
    supervisor.context = SimpleNamespace(Process=Unstartable)  # type: ignore[assignment]
    supervisor._spawn(0)
    assert 0 in supervisor.restart_at and not supervisor.running and not supervisor.gave_up
    supervisor._spawn(1)
    assert supervisor.gave_up and supervisor.stop_signal == signal.SIGTERM
