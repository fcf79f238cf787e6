"""Ended sessions shared by the workers of one gateway through a private directory (no Redis)."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

from gateway.session.ends import Ended, EndedSessions
from gateway.session.model import SessionState, SignedIn
from gateway.session.worker_ends import LOG_NAME, WorkerEnds


def state() -> SessionState:
    now = time.time()
    return SessionState(SignedIn("id", "at", "rt", now + 3600, now - 5), now - 5, now, secrets.token_urlsafe(16))


def worker(directory: Path, name: str) -> WorkerEnds:
    ends = EndedSessions(3600)
    shared = WorkerEnds(str(directory), ends, name)
    ends.publisher = shared
    shared.start()
    return shared


async def eventually(check: object, within: float = 1.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)


async def test_a_session_ended_by_one_worker_is_ended_in_the_others(tmp_path: Path) -> None:
    workers = [worker(tmp_path, f"w{i}") for i in range(3)]
    session = state()
    await workers[0].ends.end_session(session)
    await eventually(lambda: all(w.ends.ended(session) for w in workers))
    for w in workers:
        w.stop()


async def test_a_worker_started_later_reads_the_log(tmp_path: Path) -> None:
    first = worker(tmp_path, "first")
    session = state()
    await first.ends.end_session(session)
    restarted = worker(tmp_path, "restarted")
    assert restarted.ends.ended(session)
    first.stop()
    restarted.stop()


async def test_an_exited_worker_is_skipped_and_garbage_ignored(tmp_path: Path) -> None:
    alive, gone = worker(tmp_path, "alive"), worker(tmp_path, "gone")
    gone.socket.close()  # type: ignore[union-attr]  # exited without cleaning up: its socket file stays
    gone.socket = None
    (tmp_path / LOG_NAME).write_bytes(b"garbage\nnan s:x\n1 q:y\n")
    session = state()
    await alive.ends.end(Ended("s", session.sid, time.time()))
    assert alive.ends.ended(session)
    later = worker(tmp_path, "later")
    assert later.ends.ended(session) and len(later.ends) == 1
    alive.stop()
    later.stop()
    assert sorted(p.name for p in tmp_path.glob("*.sock")) == ["gone.sock"]


async def test_a_worker_that_missed_its_poke_reads_the_record_within_a_second(tmp_path: Path) -> None:
    sender, deaf = worker(tmp_path, "sender"), worker(tmp_path, "deaf")
    loop = asyncio.get_running_loop()
    loop.remove_reader(deaf.socket.fileno())  # type: ignore[union-attr]  # as if every poke were lost
    session = state()
    await sender.ends.end_session(session)
    await eventually(lambda: deaf.ends.ended(session), within=2.0)
    loop.add_reader(deaf.socket.fileno(), deaf._poked)  # type: ignore[union-attr]
    sender.stop()
    deaf.stop()


async def test_a_socket_path_too_long_falls_back_to_reading_the_log(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    sender, deep_worker = worker(deep, "sender"), worker(deep, "deep")  # neither could bind: the path is over 108 bytes
    session = state()
    await sender.ends.end_session(session)
    await eventually(lambda: deep_worker.ends.ended(session), within=2.0)
    sender.stop()
    deep_worker.stop()
