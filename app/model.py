"""The data model: sockets, processes and snapshots. Plain frozen data, shaped like psutil's.

A :class:`Sock` mirrors ``psutil._common.sconn`` (family, laddr, raddr, status, pid) with the
protocol spelled out; a :class:`ProcessInfo` holds what ``psutil.Process`` tells about an owner,
keyed by ``(pid, create_time)`` so a recycled pid is never mistaken for the process it replaced.
"""

from __future__ import annotations

import time

from app.ports import PortRange, ephemeral_range, in_ephemeral, port_range

# On the CLI's start-up path: app.lite's stand-ins, not dataclasses/typing/functools/enum (about 35 ms
# of imports together); type checkers see the originals.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections import Counter
    from collections.abc import Iterable, Mapping, Sequence
    from dataclasses import dataclass, field
    from enum import StrEnum
    from functools import cached_property
    from typing import NamedTuple
else:
    from app.lite import NamedTuple, StrEnum, cached_property, dataclass, field

_AF_INET = 2  # socket.AF_INET on every platform portscope runs on (checked in tests/unit/test_core_model.py)


class Proto(StrEnum):
    TCP = "tcp"
    UDP = "udp"


class Family(StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @property
    def af(self) -> socket.AddressFamily:
        import socket

        return socket.AF_INET if self is Family.IPV4 else socket.AF_INET6

    @classmethod
    def from_af(cls, af: int) -> Family:
        return cls.IPV4 if af == _AF_INET else cls.IPV6


# TCP states as psutil names them; UDP has two of its own.
LISTEN = "LISTEN"
ESTABLISHED = "ESTABLISHED"
TIME_WAIT = "TIME_WAIT"
CLOSE_WAIT = "CLOSE_WAIT"
UDP_BOUND = "BOUND"  # a UDP socket with no peer: it receives from anyone (a "listener")
UDP_CONNECTED = "CONNECTED"  # a UDP socket connect()ed to one peer
TCP_STATES = (
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
)
ALL_STATES = (*TCP_STATES, UDP_BOUND, UDP_CONNECTED)
# States in which a socket has no file descriptor, so no process can own it: TIME_WAIT, and a
# half-open connection the kernel holds before accept(). (Any socket the kernel reports with inode
# 0 has none either: see Sock.ownerless.)
OWNERLESS_STATES = frozenset({TIME_WAIT, "SYN_RECV", "NEW_SYN_RECV"})


class Endpoint(NamedTuple):
    """An address and port, like psutil's ``addr``."""

    ip: str
    port: int

    def __str__(self) -> str:
        return format_endpoint(self.ip, self.port)


def format_endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


_set = object.__setattr__


@dataclass(frozen=True, slots=True, init=False)
class Sock:
    """One socket. ``pid`` is ``None`` when the owner is not visible (or there is none).

    ``inode`` is the kernel's socket inode, ``0`` for a socket no file descriptor refers to (an
    orphan: TIME_WAIT, FIN_WAIT2 after close, a connection not accepted yet), ``None`` when the
    collector does not know it (psutil)."""

    proto: Proto
    family: Family
    laddr: Endpoint
    raddr: Endpoint | None
    status: str
    pid: int | None
    inode: int | None = None
    netns: int = 0  # the network namespace's inode; 0: the one portscope runs in
    # computed on first use, then kept: the dashboard needs it several times per socket per
    # poll (diff, table), a one-shot table never
    _endpoint_key: str = field(init=False, repr=False, compare=False, default="")

    def __init__(
        self,
        proto: Proto,
        family: Family,
        laddr: Endpoint,
        raddr: Endpoint | None,
        status: str,
        pid: int | None,
        inode: int | None = None,
        netns: int = 0,
    ) -> None:
        # written out: a cold poll makes one per socket (20k), a generic __init__ would cost more
        _set(self, "proto", proto)
        _set(self, "family", family)
        _set(self, "laddr", laddr)
        _set(self, "raddr", raddr)
        _set(self, "status", status)
        _set(self, "pid", pid)
        _set(self, "inode", inode)
        _set(self, "netns", netns)
        _set(self, "_endpoint_key", "")

    @property
    def ownerless(self) -> bool:
        """No process can own this socket: no file descriptor refers to it (inode 0, or a state
        that never has one). Shown as ``-`` and never counted as a hidden owner."""
        return self.inode == 0 or self.status in OWNERLESS_STATES

    @property
    def listening(self) -> bool:
        """TCP in LISTEN, or UDP bound without a peer (it accepts datagrams from anyone)."""
        return self.status == LISTEN or self.status == UDP_BOUND

    @property
    def port(self) -> int:
        return self.laddr.port

    @property
    def range(self) -> PortRange:
        return port_range(self.laddr.port)

    @property
    def endpoint_key(self) -> str:
        """Identifies the endpoint pair, e.g. ``tcp:127.0.0.1:8080`` or ``tcp:[::1]:5000>[::1]:8080``
        (prefixed ``@NETNS/`` for a socket of another network namespace)."""
        key = self._endpoint_key
        if not key:
            key = f"{self.proto.value}:{format_endpoint(self.laddr.ip, self.laddr.port)}"
            if self.raddr is not None:
                key += f">{format_endpoint(self.raddr.ip, self.raddr.port)}"
            if self.netns:
                key = f"@{self.netns}/{key}"  # the same endpoints exist in every namespace
            _set(self, "_endpoint_key", key)
        return key

    def without_owner(self) -> Sock:
        """This socket with no owner (its owner exited during the scan)."""
        return Sock(
            self.proto, self.family, self.laddr, self.raddr, self.status, None, self.inode, self.netns
        )


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What is known of a socket's owner. Strings are raw: escape before showing them."""

    pid: int
    ppid: int | None
    name: str
    exe: str
    cmdline: tuple[str, ...]
    username: str
    create_time: float

    @property
    def identity(self) -> tuple[int, float]:
        return (self.pid, self.create_time)

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) if self.cmdline else self.name


def row_keys(socks: Iterable[Sock]) -> list[str]:
    """Unique, stable keys for ``socks`` in order: the endpoint key, plus ``#pid`` (or ``#inode``)
    when several sockets share an endpoint (SO_REUSEPORT siblings, dual listeners)."""
    socks = list(socks)
    return unique_keys(socks, [s.endpoint_key for s in socks])


def unique_keys(socks: Sequence[Sock], keys: list[str]) -> list[str]:
    """``keys`` (each socket's endpoint key, in order) made unique as :func:`row_keys` says, in place."""
    if len(set(keys)) == len(keys):
        return keys
    from collections import Counter

    counts = Counter(keys)
    seen: set[str] = set()
    for i, s in enumerate(socks):
        key = keys[i]
        if counts[key] > 1:
            key = f"{key}#{s.pid if s.pid is not None else '-'}"
            if key in seen:
                key = f"{key}.{s.inode or len(seen)}"
        while key in seen:
            key += "'"
        seen.add(key)
        keys[i] = key
    return keys


class NetnsInfo(NamedTuple):
    """A network namespace a snapshot read: ``label`` is escaped text (``host``, ``container web``,
    an ``ip netns`` name), ``name`` its raw ``ip netns`` name if it has one."""

    inode: int
    label: str
    name: str | None = None
    current: bool = False


@dataclass(frozen=True, slots=True)
class SocketChange:
    """What a snapshot changed since the one before it from the same collector, as the collector
    knows it (the Linux one patches its sorted list by what the kernel reported new or gone), so
    that a follower need not compare every socket of both. ``chain`` names one unbroken run of
    snapshots of one collector and ``seq`` this one's place in it: the one before it is ``seq - 1``
    of the same chain (``seq`` 0 starts a chain: nothing is said against any earlier snapshot).
    ``fresh``: the sockets that are new objects since then; ``gone``: the previous snapshot's
    sockets not in this one (by identity; the others are the same objects). ``sockets`` is the
    tuple it describes (the snapshot's own: a copy with other sockets, ``dataclasses.replace(snap,
    sockets=...)``, no longer matches it). It also vouches that ``sockets`` are in
    :func:`app.backends.base.sort_key` order."""

    chain: int
    seq: int
    fresh: tuple[Sock, ...]
    gone: tuple[Sock, ...]
    sockets: tuple[Sock, ...] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Snapshot:
    """Everything one poll saw."""

    taken_at: float
    sockets: tuple[Sock, ...]
    processes: Mapping[int, ProcessInfo]
    hidden_owners: int = 0
    warnings: tuple[str, ...] = ()
    ephemeral: tuple[int, int] = field(default_factory=ephemeral_range)
    source: str = "psutil"
    privileged: bool = False
    # The namespaces read, by Sock.netns (0: the current one); empty when only the current one was.
    namespaces: Mapping[int, NetnsInfo] = field(default_factory=dict)
    # Sockets held by more than one process: inode -> every holder pid, the primary (Sock.pid) first.
    holders: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    # With stats (app.health): per socket inode, queues and TCP info; None when not collected.
    stats: Mapping[int, tuple[int | None, ...]] | None = None
    listen_counters: tuple[int, int] | None = None  # host ListenOverflows, ListenDrops (app.health)
    # What changed since the collector's snapshot before this one (None: not known, compare all).
    change: SocketChange | None = field(default=None, repr=False, compare=False)

    def owner(self, sock: Sock) -> ProcessInfo | None:
        return self.processes.get(sock.pid) if sock.pid is not None else None

    def holders_of(self, sock: Sock) -> tuple[int, ...]:
        """Every visible process holding ``sock``, the primary owner (``sock.pid``) first: a
        pre-fork master and then its workers. Empty when the owner is not visible."""
        shared = self.holders.get(sock.inode) if sock.inode else None
        if shared is None:
            return (sock.pid,) if sock.pid is not None else ()
        return tuple(p for p in shared if p in self.processes)

    @property
    def listeners(self) -> tuple[Sock, ...]:
        return tuple(s for s in self.sockets if s.listening)

    @property
    def connections(self) -> tuple[Sock, ...]:
        return tuple(s for s in self.sockets if not s.listening)

    def on_port(self, port: int, proto: Proto | None = None) -> list[Sock]:
        """Every socket whose local port is ``port`` (listening or connected), like ``lsof -i :PORT``."""
        return [s for s in self.sockets if s.laddr.port == port and (proto is None or s.proto == proto)]

    def in_ephemeral(self, sock: Sock) -> bool:
        return in_ephemeral(sock.laddr.port, self.ephemeral)

    @cached_property
    def keys(self) -> tuple[str, ...]:
        """The row key of each socket, aligned with :attr:`sockets` (computed once per snapshot)."""
        return tuple(row_keys(self.sockets))

    @cached_property
    def _keyed(self) -> dict[str, Sock]:
        return dict(zip(self.keys, self.sockets, strict=True))

    def keyed(self) -> dict[str, Sock]:
        """Row key -> socket, in socket order. Shared and cached: do not modify it."""
        return self._keyed

    @cached_property
    def _established_index(self) -> Counter[tuple[Proto, Family, int, str]]:
        from collections import Counter

        return Counter(
            (s.proto, s.family, s.laddr.port, s.laddr.ip) for s in self.sockets if s.status == ESTABLISHED
        )

    def established_to(self, listener: Sock) -> int:
        """How many ESTABLISHED connections have ``listener``'s local port and address (accepted by it)."""
        index = self._established_index
        lp = listener.laddr
        if lp.ip in ("0.0.0.0", "::"):
            return sum(
                n
                for (proto, fam, port, _ip), n in index.items()
                if proto == listener.proto and fam == listener.family and port == lp.port
            )
        return index.get((listener.proto, listener.family, lp.port, lp.ip), 0)


def empty_snapshot() -> Snapshot:
    return Snapshot(taken_at=time.time(), sockets=(), processes={})
