"""The collector: one call returns a :class:`~app.model.Snapshot` of every inet socket and its owner.

This is the portable path, built on ``psutil.net_connections``. It survives a process that exits
or denies access between the listing and the lookup, runs unprivileged (owners it cannot see stay
``None`` and are counted), and where ``net_connections`` itself needs root (macOS) it falls back
to listing each readable process's own connections.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Literal, Protocol

import psutil

from app.model import (
    OWNERLESS_STATES,
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
    """Sockets that should have an owner but show none (TIME_WAIT and SYN_RECV never have one)."""
    return sum(1 for s in socks if s.pid is None and s.status not in OWNERLESS_STATES)


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
        conns: list[Any] | None = None
        for _attempt in range(2):
            try:
                conns = psutil.net_connections("inet")
                break
            except psutil.AccessDenied:
                break
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # a process exited while psutil walked its descriptors: try once more
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


def finish_snapshot(
    taken: float,
    socks: list[Sock],
    cache: ProcessCache,
    warnings: list[str],
    source: str,
    *,
    pids: set[int] | None = None,
    presorted: bool = False,
    hidden: int | None = None,
) -> Snapshot:
    """Resolve owners, drop owners that vanished mid-scan (their sockets become ownerless and are
    counted), and build the snapshot. Shared by every collector.

    A collector that already knows the owner pids of ``socks`` may pass them as ``pids``, and
    ``presorted=True`` when ``socks`` is already in :func:`_sort_key` order (the fast collector
    keeps its list sorted between polls), and ``hidden``, the :func:`hidden_owner_count`."""
    if pids is None:
        pids = {s.pid for s in socks if s.pid is not None}
    processes = cache.lookup(pids)
    privileged = is_privileged()
    # Sockets the OS listed without an owner: counted and explained (never hidden).
    if hidden is None:
        hidden = hidden_owner_count(socks)
    note = owner_warning(hidden, privileged)
    vanished = pids - processes.keys()
    if vanished:
        lost = sum(1 for s in socks if s.pid in vanished)
        socks = [
            Sock(s.proto, s.family, s.laddr, s.raddr, s.status, None, s.inode) if s.pid in vanished else s
            for s in socks
        ]
        presorted = False
        n = len(vanished)
        warnings.append(
            f"{n} owner{'s' if n != 1 else ''} exited or could not be read during the scan: "
            f"{lost} socket{'s are' if lost != 1 else ' is'} shown without an owner"
        )
        hidden += lost  # owned sockets (never TIME_WAIT) that lost their owner
    cache.forget_except(processes)
    if note:
        warnings.insert(0, note)
    if not presorted:
        socks = sorted(socks, key=_sort_key)
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


@lru_cache(maxsize=4096)
def _ip_order(ip: str) -> tuple[int, int, str]:
    """Numeric order of addresses (10.0.0.2 before 10.0.0.10), IPv4 before IPv6."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return (2, 0, ip)
    return (addr.version, int(addr), ip)


def _sort_key(s: Sock) -> tuple[object, ...]:
    """Like ``ss -tan`` sorted by local port: per port, TCP before UDP, the listener before its
    connections, then by local and remote address."""
    return (
        s.laddr.port,
        s.proto.value,
        0 if s.listening else 1,
        _ip_order(s.laddr.ip),
        _ip_order(s.raddr.ip) if s.raddr else (0, 0, ""),
        s.raddr.port if s.raddr else -1,
        s.pid if s.pid is not None else -1,
    )


def sort_sockets(socks: Iterable[Sock]) -> list[Sock]:
    """Sockets in display order (the order every collector's snapshot uses)."""
    return sorted(socks, key=_sort_key)


def default_collector() -> Collector:
    """The best collector for this platform: the netlink fast path on Linux when available.

    ``PORTSCOPE_COLLECTOR=psutil`` forces the portable collector (to compare, or to work around
    a problem in the fast path)."""
    if os.environ.get("PORTSCOPE_COLLECTOR", "").strip().lower() == "psutil":
        return PsutilCollector()
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
