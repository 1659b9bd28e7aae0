"""The portable backend, built on ``psutil.net_connections``.

It survives a process that exits or denies access between the listing and the lookup, runs
unprivileged (owners it cannot see stay ``None`` and are counted), and where ``net_connections``
itself needs root (macOS) it falls back to listing each readable process's own connections.
psutil reports no socket inodes, so its sockets carry ``inode=None`` (unknown).
"""

from __future__ import annotations

import socket
import time
from typing import Any

import psutil

from app.backends.base import finish_snapshot
from app.errors import CollectorUnavailable
from app.model import UDP_BOUND, UDP_CONNECTED, Endpoint, Family, Proto, Snapshot, Sock
from app.processes import ProcessCache


def sock_from_psutil(conn: Any, pid: int | None = None) -> Sock | None:
    """Convert a psutil ``sconn``/``pconn`` to a :class:`Sock` (``None`` for non-inet sockets)."""
    if conn.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    proto = Proto.TCP if conn.type == socket.SOCK_STREAM else Proto.UDP
    if not conn.laddr:
        return None
    laddr = Endpoint(conn.laddr[0], conn.laddr[1])
    raddr = Endpoint(conn.raddr[0], conn.raddr[1]) if conn.raddr else None
    status = conn.status
    if proto is Proto.UDP:
        status = UDP_CONNECTED if raddr else UDP_BOUND
    owner = pid if pid is not None else getattr(conn, "pid", None)
    return Sock(proto, Family.from_af(conn.family), laddr, raddr, status, owner or None, None)


class PsutilCollector:
    """Snapshot via ``psutil.net_connections('inet')``; owners via a (pid, create_time) cache."""

    source = "psutil"

    def __init__(self) -> None:
        self.processes = ProcessCache()

    def _list(self) -> tuple[list[Sock], list[str]]:
        warnings: list[str] = []
        conns: list[Any] | None = None
        for _attempt in range(2):
            try:
                conns = psutil.net_connections("inet")
                break
            except psutil.AccessDenied:
                break
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # a process exited while psutil walked its descriptors: try once more
            except OSError as exc:  # /proc/net hidden or unreadable: there is nothing to list from
                reason = exc.strerror or type(exc).__name__
                raise CollectorUnavailable(f"cannot list sockets: psutil failed ({reason})") from None
        if conns is None:
            socks, unreadable = self._per_process()
            warnings.append(
                "the system-wide socket list needs root here: showing the sockets of "
                f"readable processes only ({unreadable} process{'es' if unreadable != 1 else ''} "
                "could not be read)"
            )
            return socks, warnings
        socks = [s for s in (sock_from_psutil(c) for c in conns) if s is not None]
        return socks, warnings

    def _per_process(self) -> tuple[list[Sock], int]:
        """The macOS fallback: ask each process we can read for its own sockets.

        Returns the sockets and how many processes refused (other users' processes)."""
        out: list[Sock] = []
        unreadable = 0
        for proc in psutil.process_iter():
            try:
                conns = proc.net_connections("inet")
            except psutil.AccessDenied:
                unreadable += 1
                continue
            except (psutil.Error, OSError):  # exited (NoSuchProcess), zombie, or vanished mid-read
                continue
            for c in conns:
                sock = sock_from_psutil(c, proc.pid)
                if sock is not None:
                    out.append(sock)
        return out, unreadable

    def collect(self, *, port: int | None = None) -> Snapshot:
        taken = time.time()
        socks, warnings = self._list()
        if port is not None:
            socks = [s for s in socks if s.laddr.port == port]
        return finish_snapshot(taken, socks, self.processes, warnings, self.source)
