"""The collector: one call returns a :class:`~app.model.Snapshot` of every inet socket and its owner.

This is the portable path, built on ``psutil.net_connections``. It survives a process that exits
or denies access between the listing and the lookup, runs unprivileged (owners it cannot see stay
``None`` and are counted), and where ``net_connections`` itself needs root (macOS) it falls back
to listing each readable process's own connections.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterable
from typing import Any, Literal, Protocol

import psutil

from app.model import (
    TIME_WAIT,
    UDP_BOUND,
    UDP_CONNECTED,
    Endpoint,
    Family,
    Proto,
    Snapshot,
    Sock,
)
from app.ports import ephemeral_range
from app.processes import ProcessCache, is_privileged

Kind = Literal["all", "listening", "connections"]


class Collector(Protocol):
    """Anything that can take a snapshot. The dashboard and CLI depend only on this."""

    def collect(self, *, port: int | None = None) -> Snapshot:
        """Every inet socket (only those with local ``port``, when given) with owners resolved."""
        ...


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
    return Sock(proto, Family.from_af(conn.family), laddr, raddr, status, owner or None)


def hidden_owner_count(socks: Iterable[Sock]) -> int:
    """Sockets that should have an owner but show none (TIME_WAIT never has one)."""
    return sum(1 for s in socks if s.pid is None and s.status != TIME_WAIT)


def owner_warning(hidden: int, privileged: bool) -> str | None:
    if not hidden:
        return None
    noun = "socket has" if hidden == 1 else "sockets have"
    if privileged:
        return f"{hidden} {noun} no visible owner (another PID namespace or container, or the kernel)"
    return f"{hidden} {noun} no visible owner: other users' processes need root"


class PsutilCollector:
    """Snapshot via ``psutil.net_connections('inet')``; owners via a (pid, create_time) cache."""

    source = "psutil"

    def __init__(self) -> None:
        self.processes = ProcessCache()

    def _list(self) -> tuple[list[Sock], list[str]]:
        warnings: list[str] = []
        try:
            conns = psutil.net_connections("inet")
        except psutil.AccessDenied:
            warnings.append("the system-wide socket list needs root here: showing readable processes only")
            return self._per_process(), warnings
        socks = [s for s in (sock_from_psutil(c) for c in conns) if s is not None]
        return socks, warnings

    def _per_process(self) -> list[Sock]:
        """The macOS fallback: ask each process we can read for its own sockets."""
        out: list[Sock] = []
        for proc in psutil.process_iter():
            try:
                conns = proc.net_connections("inet")
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            except OSError:
                continue
            for c in conns:
                sock = sock_from_psutil(c, proc.pid)
                if sock is not None:
                    out.append(sock)
        return out

    def collect(self, *, port: int | None = None) -> Snapshot:
        taken = time.time()
        socks, warnings = self._list()
        if port is not None:
            socks = [s for s in socks if s.laddr.port == port]
        return finish_snapshot(taken, socks, self.processes, warnings, self.source)


def finish_snapshot(
    taken: float,
    socks: list[Sock],
    cache: ProcessCache,
    warnings: list[str],
    source: str,
) -> Snapshot:
    """Resolve owners, drop owners that vanished mid-scan (their sockets become ownerless and are
    counted), and build the snapshot. Shared by every collector."""
    pids = {s.pid for s in socks if s.pid is not None}
    processes = cache.lookup(pids)
    vanished = pids - processes.keys()
    if vanished:
        socks = [
            Sock(s.proto, s.family, s.laddr, s.raddr, s.status, None, s.inode) if s.pid in vanished else s
            for s in socks
        ]
        n = len(vanished)
        warnings.append(f"{n} owner{'s' if n != 1 else ''} exited or could not be read during the scan")
    cache.forget_except(processes)
    privileged = is_privileged()
    hidden = hidden_owner_count(socks)
    note = owner_warning(hidden, privileged)
    if note:
        warnings.insert(0, note)
    socks.sort(key=_sort_key)
    return Snapshot(
        taken_at=taken,
        sockets=tuple(socks),
        processes=processes,
        hidden_owners=hidden,
        warnings=tuple(warnings),
        ephemeral=ephemeral_range(),
        source=source,
        privileged=privileged,
    )


def _sort_key(s: Sock) -> tuple[int, str, int, str, int, int]:
    return (
        s.laddr.port,
        s.proto.value,
        0 if s.family is Family.IPV4 else 1,
        s.laddr.ip,
        s.raddr.port if s.raddr else -1,
        s.pid or 0,
    )


def default_collector() -> Collector:
    """The best collector for this platform: the netlink fast path on Linux when available."""
    if sys.platform.startswith("linux"):
        try:
            from app.fast import FastCollector
        except ImportError:
            pass
        else:
            try:
                return FastCollector()
            except Exception:  # any failure to set up the fast path: use the portable one
                pass
    return PsutilCollector()


def filter_kind(snapshot: Snapshot, kind: Kind) -> list[Sock]:
    if kind == "listening":
        return list(snapshot.listeners)
    if kind == "connections":
        return list(snapshot.connections)
    return list(snapshot.sockets)
