"""Row preparation, off the UI thread: each snapshot becomes row deltas against the previous one.

:class:`Preparer` diffs each new snapshot against the previous one (with the one diff module,
:func:`app.events.diff`) and builds :class:`~widgets.table_model.RowSpec` s from the column specs
in :mod:`app.tui.columns`; it runs in the poll thread and touches no widget. Each row's payload
(:class:`SockRow`) is what the filter, the detail pane and the actions look at; its facets are
what the range and state bars select and count.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from app.events import Event, EventKind, diff
from app.exposure import Exposure
from app.interfaces import Interface
from app.model import ESTABLISHED, ProcessInfo, Snapshot, Sock, empty_snapshot
from app.ports import in_ephemeral
from app.textsafe import printable
from app.tui.columns import IFACE_COLUMNS, LISTEN_COLUMNS
from app.tui.formatting import command_text, owner_cells, sparkline
from widgets.table_model import Column, RowSpec, values_getter

_listen_values = values_getter(LISTEN_COLUMNS)
_iface_values = values_getter(IFACE_COLUMNS)


class Classifier(Protocol):
    def classify(self, ip: str) -> Exposure: ...


@dataclass(frozen=True, slots=True)
class SockRow:
    """What a socket row carries: the socket and its owner for filtering, detail and actions,
    and the escaped texts its cells show."""

    sock: Sock
    owner: ProcessInfo | None
    exposure: Exposure
    name: str = ""
    user: str = ""
    command: str = ""
    conns: int = 0  # established connections to a listener

    @property
    def exposed(self) -> bool:
        return self.exposure.beyond_loopback


def sock_row(sock: Sock, snap: Snapshot, exposure: Exposure, conns: int = 0) -> SockRow:
    owner = snap.owner(sock)
    name, user = owner_cells(owner, sock)
    command = command_text(owner.cmdline) if owner is not None else ""
    return SockRow(sock, owner, exposure, name, user, command, conns)


def established_counter(snap: Snapshot) -> Callable[[Sock], int]:
    """Like :meth:`Snapshot.established_to` but O(1) per listener after one pass over the
    snapshot (a wildcard listener counts connections to its port on any address)."""
    by_addr: Counter[tuple[str, str, int, str]] = Counter()
    by_port: Counter[tuple[str, str, int]] = Counter()
    for s in snap.sockets:
        if s.status == ESTABLISHED:
            by_addr[(s.proto, s.family, s.laddr.port, s.laddr.ip)] += 1
            by_port[(s.proto, s.family, s.laddr.port)] += 1

    def count(listener: Sock) -> int:
        lp = listener.laddr
        if lp.ip in ("0.0.0.0", "::"):
            return by_port[(listener.proto, listener.family, lp.port)]
        return by_addr[(listener.proto, listener.family, lp.port, lp.ip)]

    return count


def listen_spec(key: str, payload: SockRow, ephemeral: tuple[int, int]) -> RowSpec:
    """A listener's row: grouped by port range; facets: its range, ``exposed``, ``ephemeral``."""
    sock = payload.sock
    group = sock.range.value
    facets: tuple[str, ...] = (group,)
    if payload.exposed:
        facets += ("exposed",)
    if in_ephemeral(sock.laddr.port, ephemeral):
        facets += ("ephemeral",)
    return RowSpec(key, _listen_values(payload), group, payload, facets)


def conn_spec(key: str, payload: SockRow, values: Callable[[SockRow], tuple[object, ...]]) -> RowSpec:
    """A connection's row (``values`` from :func:`values_getter` of its columns); its facet is its
    state."""
    return RowSpec(key, values(payload), "", payload, (payload.sock.status,))


@dataclass(slots=True)
class Delta:
    added: list[RowSpec] = field(default_factory=list)
    updated: list[RowSpec] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Prepared:
    """One poll's result, ready to apply on the UI thread."""

    snapshot: Snapshot
    keyed: dict[str, Sock]
    first: bool
    listen: Delta
    conns: Delta
    interfaces: list[RowSpec] | None = None
    events: list[Event] = field(default_factory=list)  # empty on the first poll (the starting point)


class Preparer:
    """Diffs each snapshot against the previous one and builds row deltas. Not thread-safe: one
    poll at a time (the dashboard never runs two)."""

    def __init__(self, exposure: Classifier, conn_columns: tuple[Column, ...]) -> None:
        self.exposure = exposure
        self.conn_values = values_getter(conn_columns)
        self.prev: Snapshot | None = None

    def prepare(self, snap: Snapshot) -> Prepared:
        first = self.prev is None
        prev = self.prev or empty_snapshot()
        events = diff(prev, snap)
        keyed = snap.keyed()
        classify = self.exposure.classify
        columns = self.conn_values
        listen, conns = Delta(), Delta()
        opened: set[str] = set()
        for ev in events:
            is_listener = ev.sock.listening
            if ev.kind is EventKind.OPENED:
                if is_listener:
                    opened.add(ev.key)
                else:
                    row = sock_row(ev.sock, snap, classify(ev.sock.laddr.ip))
                    conns.added.append(conn_spec(ev.key, row, columns))
            elif ev.kind is EventKind.CLOSED:
                (listen if is_listener else conns).gone.append(ev.key)
            else:  # state or owner changed
                if is_listener:
                    listen.changed.append(ev.key)
                else:
                    row = sock_row(ev.sock, snap, classify(ev.sock.laddr.ip))
                    conns.updated.append(conn_spec(ev.key, row, columns))
                    conns.changed.append(ev.key)
        count = established_counter(snap)
        for key, sock in keyed.items():
            if not sock.listening:
                continue
            row = sock_row(sock, snap, classify(sock.laddr.ip), count(sock))
            spec = listen_spec(key, row, snap.ephemeral)
            (listen.added if key in opened else listen.updated).append(spec)
        self.prev = snap
        return Prepared(snap, keyed, first, listen, conns, events=[] if first else events)


@dataclass(frozen=True, slots=True)
class IfaceRow:
    """An interface row's payload: the interface, its rates and their history."""

    itf: Interface
    name: str
    ipv4: str
    ipv6: str
    rx_rate: float | None
    tx_rate: float | None
    rx_spark: str
    tx_spark: str


class IfaceTracker:
    """Receive/send rates and their history per interface, from successive counters."""

    def __init__(self, history: int = 30) -> None:
        self.history = history
        self._last: dict[str, tuple[float, int, int]] = {}
        self._rx: dict[str, deque[float]] = {}
        self._tx: dict[str, deque[float]] = {}

    def update(self, interfaces: Iterable[Interface], now: float) -> list[RowSpec]:
        specs: list[RowSpec] = []
        seen: set[str] = set()
        for itf in interfaces:
            seen.add(itf.name)
            rx_rate = tx_rate = None
            last = self._last.get(itf.name)
            if last is not None and now > last[0]:
                dt = now - last[0]
                rx_rate = max(0.0, (itf.bytes_recv - last[1]) / dt)
                tx_rate = max(0.0, (itf.bytes_sent - last[2]) / dt)
                self._rx.setdefault(itf.name, deque(maxlen=self.history)).append(rx_rate)
                self._tx.setdefault(itf.name, deque(maxlen=self.history)).append(tx_rate)
            self._last[itf.name] = (now, itf.bytes_recv, itf.bytes_sent)
            row = IfaceRow(
                itf,
                printable(itf.name, 32),
                ", ".join(a.address for a in itf.addresses if a.family == "ipv4") or "-",
                ", ".join(a.address for a in itf.addresses if a.family == "ipv6") or "-",
                rx_rate,
                tx_rate,
                sparkline(self._rx.get(itf.name, ())),
                sparkline(self._tx.get(itf.name, ())),
            )
            specs.append(RowSpec(itf.name, _iface_values(row), "", itf))
        for name in [n for n in self._last if n not in seen]:
            self._last.pop(name, None)
            self._rx.pop(name, None)
            self._tx.pop(name, None)
        return specs
