"""Ended sessions shared by the workers of one `--workers N` gateway, without Redis.

The parent makes a private directory (mode 0700) before starting its workers. Records are lines
appended to one log there (`ended.log`); each worker reads the log at start, and then reads what was
appended since: at once when another worker pokes its Unix datagram socket, and every second
anyway, so a poke lost to a full socket queue delays a record by a second at most. A restarted
worker reads the whole log again. The records die with the parent, as they would in one process.

A record is appended only when it is new (EndedSessions.end), so the log grows with real sign-outs
only: about 40 bytes each.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

from .ends import Ended, EndedSessions

log = logging.getLogger("gateway.session")
LOG_NAME = "ended.log"
CATCH_UP_EVERY = 1.0  # seconds between reads of the log without a poke


class WorkerEnds:
    def __init__(self, directory: str, ends: EndedSessions, name: str | None = None) -> None:
        self.directory = Path(directory)
        self.ends = ends
        self.address = str(self.directory / f"{name or os.getpid()}.sock")
        self.log_path = self.directory / LOG_NAME
        self.offset = 0  # how much of the log has been read
        self.socket: socket.socket | None = None
        self.timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Bind, read the log, listen (in the worker's event loop). Bound first: see publish()."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        self.socket = sock
        try:
            if os.path.exists(self.address):
                os.unlink(self.address)  # a previous worker with the same pid
            sock.bind(self.address)
        except OSError as exc:  # e.g. a TMPDIR so deep the path is too long for a socket: the log still serves
            log.warning("workers will learn ended sessions within %ss instead of at once: %s", CATCH_UP_EVERY, exc)
        else:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._poked)
        self._catch_up()

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.socket is not None:
            asyncio.get_running_loop().remove_reader(self.socket.fileno())  # False when it never listened
            self.socket.close()
            self.socket = None
            try:
                os.unlink(self.address)
            except FileNotFoundError:
                pass

    async def publish(self, record: Ended) -> None:
        """Append, then poke the others: a worker that started meanwhile either finds the line or is poked."""
        line = (record.message() + "\n").encode()
        try:
            # One write() of a short line to an O_APPEND file: never interleaved with another worker's.
            descriptor = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, line)
            finally:
                os.close(descriptor)
        except OSError as exc:
            log.error("could not share an ended session with the other workers: %s", exc)
            return
        for peer in self.directory.glob("*.sock"):
            if str(peer) != self.address and self.socket is not None:
                try:
                    self.socket.sendto(b"!", str(peer))
                except OSError:
                    pass  # exited, or its queue is full: it reads the log within CATCH_UP_EVERY anyway

    def _poked(self) -> None:
        assert self.socket is not None
        while True:
            try:
                self.socket.recv(64)
            except OSError:  # drained
                break
        self._catch_up()

    def _catch_up(self) -> None:
        """Apply the lines appended since the last read; again in CATCH_UP_EVERY."""
        if self.timer is not None:
            self.timer.cancel()
        try:
            with open(self.log_path, "rb") as lines:
                lines.seek(self.offset)
                appended = lines.read()
        except FileNotFoundError:
            appended = b""
        complete = appended[: appended.rfind(b"\n") + 1]  # a line being written is read next time
        self.offset += len(complete)
        for line in complete.splitlines():
            record = Ended.from_message(line)
            if record is not None:
                self.ends.apply(record)
        self.timer = asyncio.get_running_loop().call_later(CATCH_UP_EVERY, self._catch_up)
