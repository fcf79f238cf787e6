"""Ended sessions shared by the workers of one `--workers N` gateway, without Redis.

The parent makes a private directory (mode 0700) before starting its workers. Each worker binds a
Unix datagram socket there, then reads the log of records (`ended.log`), then hears new records on
its socket. Ending a session appends a line to the log, then sends it to every other worker's
socket: the same shape as Redis's sorted set plus pub/sub (shared_ends.py), and for the same
reason in that order: a worker starting meanwhile either finds the line in the log or, bound
before it read the log, is among the sockets the record is sent to. A restarted worker reloads the
log. The records die with the parent, as they would in one process.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
from pathlib import Path

from .ends import Ended, EndedSessions

log = logging.getLogger("gateway.session")
LOG_NAME = "ended.log"
MAX_LINE = 512  # a record is "<time> s:<id>" or "<time> u:<sub>": far shorter; longer is not ours


class WorkerEnds:
    def __init__(self, directory: str, ends: EndedSessions, name: str | None = None) -> None:
        self.directory = Path(directory)
        self.ends = ends
        self.address = str(self.directory / f"{name or os.getpid()}.sock")
        self.socket: socket.socket | None = None

    def start(self) -> None:
        """Bind, load the log, listen (in the worker's event loop)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        if os.path.exists(self.address):
            os.unlink(self.address)  # a previous worker with the same pid
        sock.bind(self.address)
        self.socket = sock
        try:
            with open(self.directory / LOG_NAME, "rb") as lines:
                for line in lines:
                    self._apply(line)
        except FileNotFoundError:
            pass
        asyncio.get_running_loop().add_reader(sock.fileno(), self._receive)

    def stop(self) -> None:
        if self.socket is not None:
            asyncio.get_running_loop().remove_reader(self.socket.fileno())
            self.socket.close()
            self.socket = None
            try:
                os.unlink(self.address)
            except FileNotFoundError:
                pass

    async def publish(self, record: Ended) -> None:
        line = f"{record.at!r} {record.member}\n".encode()
        try:
            # One write() of a short line to an O_APPEND file: never interleaved with another worker's.
            descriptor = os.open(self.directory / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, line)
            finally:
                os.close(descriptor)
            for peer in self.directory.glob("*.sock"):
                if str(peer) != self.address and self.socket is not None:
                    try:
                        self.socket.sendto(line, str(peer))
                    except (ConnectionRefusedError, FileNotFoundError):
                        pass  # a worker that has exited: its successor reads the log
        except OSError as exc:
            log.error("could not share an ended session with the other workers: %s", exc)

    def _receive(self) -> None:
        assert self.socket is not None
        while True:
            try:
                data = self.socket.recv(MAX_LINE)
            except (BlockingIOError, InterruptedError):
                return
            self._apply(data)

    def _apply(self, line: bytes) -> None:
        at, _, member = line.decode(errors="replace").strip().partition(" ")
        try:
            when = float(at)
        except ValueError:
            return
        record = Ended.parse(member, when) if math.isfinite(when) else None
        if record is not None:
            self.ends.apply(record)
