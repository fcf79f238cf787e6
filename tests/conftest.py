"""Shared fixtures: every server runs for real on an ephemeral 127.0.0.1 port.

And nothing outlives the run: the pytest process becomes a child subreaper (Linux), so a process
orphaned by a test (a worker whose gateway was killed, a daemon that forked) is re-parented to it
rather than to init, where it would keep a port and run on unseen. At the end of the session, after
every fixture has stopped what it started, any child still alive fails the run with its command line.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.idp",
    "tests.fixtures.browser",
    "tests.fixtures.stack",
    "tests.fixtures.redis",
    "tests.fixtures.oidc_provider",
    "tests.fixtures.proxies",
    "tests.fixtures.faulty",
]

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
LEFTOVER_GRACE = 3.0  # seconds for children that are still shutting down at the end of the session


def become_subreaper() -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: orphans go to init, unseen
        return False


def living_children(pid: int) -> dict[int, str]:
    """Children of `pid` that are not zombies, with their command lines; zombies are reaped."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # comm may hold spaces and parentheses: the fields that follow it start after the last ")".
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            if int(ppid) != pid:
                continue
            if state == "Z":
                os.waitpid(int(entry.name), os.WNOHANG)
                continue
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, ChildProcessError):
            continue  # gone meanwhile
    return found


def leftovers(grace: float = LEFTOVER_GRACE) -> dict[int, str]:
    """Children still alive after `grace`: each killed (and reaped), and so are the orphans it leaves."""
    deadline = time.monotonic() + grace
    while (alive := living_children(os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = dict(alive)
    while alive:  # killing one orphans its children: they come to us, so look again
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
        alive = living_children(os.getpid())
        survivors.update(alive)
    living_children(os.getpid())  # reap the last ones
    return survivors


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Fails the run (an error at the last test's teardown) if a process started by the tests survives them.

    Session-scoped and autouse, so it is set up before and torn down after every other fixture.
    """
    reaping = become_subreaper()
    yield
    if not reaping:
        return
    survivors = leftovers()
    if survivors:
        lines = "\n".join(f"  pid {pid}: {command}" for pid, command in sorted(survivors.items()))
        pytest.fail(f"{len(survivors)} process(es) outlived the tests (killed now):\n{lines}", pytrace=False)
