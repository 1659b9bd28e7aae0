"""What every socket backend shares: the collector protocol, snapshot assembly and the sort order.

The display order is defined once, as an integer key (:func:`sort_key`): the Linux backend keeps a
per-record part of it cached (:func:`base_key`) so a steady poll never recomputes it, and the
portable backend sorts with the same function.
"""

from __future__ import annotations

from app.errors import CollectorUnavailable
from app.model import LISTEN, UDP_BOUND, Proto, Snapshot
from app.ports import ephemeral_range
from app.processes import is_privileged

TYPE_CHECKING = False  # on the CLI's start-up path: no typing at run time
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Literal, Protocol

    from app.model import Endpoint, NetnsInfo, Sock
    from app.processes import ProcessCache

    Kind = Literal["all", "listening", "connections"]
else:
    Protocol = object
    Kind = str  # "all", "listening" or "connections"

__all__ = [
    "Collector",
    "CollectorUnavailable",
    "Kind",
    "base_key",
    "filter_kind",
    "finish_snapshot",
    "hidden_owner_count",
    "owner_warning",
    "sort_key",
    "sort_sockets",
]


class Collector(Protocol):
    """Anything that can take a snapshot. The dashboard and CLI depend only on this."""

    def collect(self, *, port: int | None = None) -> Snapshot:
        """Every inet socket (only those with local ``port``, when given) with owners resolved.
        Raises :class:`~app.errors.CollectorUnavailable` when no socket source works at all."""
        ...


def hidden_owner_count(socks: Iterable[Sock]) -> int:
    """Sockets that should have an owner but show none (see :attr:`Sock.ownerless`: TIME_WAIT,
    half-open and orphaned sockets never have one)."""
    return sum(1 for s in socks if s.pid is None and not s.ownerless)


def owner_warning(hidden: int, privileged: bool) -> str | None:
    if not hidden:
        return None
    noun = "socket has" if hidden == 1 else "sockets have"
    if privileged:
        return f"{hidden} {noun} no visible owner (another PID namespace or container, or the kernel)"
    return f"{hidden} {noun} no visible owner: other users' processes need root"


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
    stats: Mapping[int, tuple[int | None, ...]] | None = None,
    listen_counters: tuple[int, int] | None = None,
    holders: Mapping[int, tuple[int, ...]] | None = None,
    namespaces: Mapping[int, NetnsInfo] | None = None,
) -> Snapshot:
    """Resolve owners, drop owners that vanished mid-scan (their sockets become ownerless and are
    counted), and build the snapshot. Shared by every collector.

    A collector that already knows the owner pids of ``socks`` may pass them as ``pids``, and
    ``presorted=True`` when ``socks`` is already in :func:`sort_key` order (the Linux backend
    keeps its list sorted between polls), and ``hidden``, the :func:`hidden_owner_count`.
    ``stats`` and ``listen_counters`` are passed through (see :mod:`app.health`), and ``holders``
    (inode -> every pid holding a shared socket, primary first); ``pids`` must include them all."""
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
        socks = [s.without_owner() if s.pid in vanished else s for s in socks]
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
        socks = sorted(socks, key=sort_key)
    return Snapshot(
        taken_at=taken,
        sockets=tuple(socks),
        processes=processes,
        hidden_owners=hidden,
        warnings=tuple(warnings),
        ephemeral=ephemeral_range(),
        source=source,
        privileged=privileged,
        stats=stats,
        listen_counters=listen_counters,
        holders=holders or {},
        namespaces=namespaces or {},
    )


# --- the one display order --------------------------------------------------------------------
#
# Like ``ss -tan`` sorted by local port: per port, TCP before UDP, the listener before its
# connections, then local address (numerically, IPv4 before IPv6), remote address, remote port and
# owner pid. As one int (no tuple per socket to allocate and compare): bit fields, most significant
# first: local port (16), protocol (1: tcp, udp), not-listening (1), local address kind (2:
# unparsable, v4, v6) and value (128), remote address kind (2: none, unparsable, v4, v6) and value
# (128), remote port + 1 (17; 0: none), owner pid + 1 (32; 0: none). Addresses that do not parse
# (never produced by the kernel) tie with each other.

_PID_BITS = 32
_ADDR_BITS = 130
_LOCAL_ADDR: dict[str, int] = {}
_REMOTE_ADDR: dict[str, int] = {}
_CACHE_LIMIT = 65536  # hosts have few distinct addresses; a bound keeps a scan of many from growing it


def _addr_bits(ip: str, remote: bool) -> int:
    cache = _REMOTE_ADDR if remote else _LOCAL_ADDR
    bits = cache.get(ip)
    if bits is None:
        rank, value = _addr_value(ip.split("%", 1)[0])
        bits = (rank + remote) << 128 | value  # the remote field keeps 0 for "no remote address"
        if len(cache) < _CACHE_LIMIT:
            cache[ip] = bits
    return bits


def _addr_value(bare: str) -> tuple[int, int]:
    """(1, value) for an IPv4 address, (2, value) for IPv6, (0, 0) for text that is neither, as
    ``ipaddress.ip_address`` reads it; the kernel's text is read with ``inet_pton`` (ipaddress
    costs 4 ms of start-up)."""
    from _socket import AF_INET, AF_INET6, inet_pton

    try:
        packed = inet_pton(AF_INET6 if ":" in bare else AF_INET, bare)
    except (OSError, ValueError):
        import ipaddress  # a form inet_pton does not read: ipaddress decides

        try:
            addr = ipaddress.ip_address(bare)
        except ValueError:
            return 0, 0
        return (1 if addr.version == 4 else 2), int(addr)
    return (1 if len(packed) == 4 else 2), int.from_bytes(packed, "big")


def base_key(proto: Proto, laddr: Endpoint, raddr: Endpoint | None, status: str) -> int:
    """The part of :func:`sort_key` that does not depend on the owner (it is ``sort_key`` with no
    pid); ``base | (pid + 1)`` is the full key."""
    listening = status in (LISTEN, UDP_BOUND)
    head = (laddr[1] << 2) | ((proto is Proto.UDP) << 1) | (not listening)
    key = (head << _ADDR_BITS | _addr_bits(laddr[0], False)) << _ADDR_BITS
    if raddr is not None:
        key |= _addr_bits(raddr[0], True)
        return ((key << 17) | (raddr[1] + 1)) << _PID_BITS
    return key << (17 + _PID_BITS)


def sort_key(s: Sock) -> int:
    """The display order of sockets, as one int (see the comment above)."""
    base = base_key(s.proto, s.laddr, s.raddr, s.status)
    return base | (s.pid + 1) if s.pid is not None else base


def sort_sockets(socks: Iterable[Sock]) -> list[Sock]:
    """Sockets in display order (the order every collector's snapshot uses)."""
    return sorted(socks, key=sort_key)


def filter_kind(snapshot: Snapshot, kind: Kind) -> list[Sock]:
    if kind == "listening":
        return list(snapshot.listeners)
    if kind == "connections":
        return list(snapshot.connections)
    return list(snapshot.sockets)
