"""Row preparation, off the UI thread: each snapshot becomes row deltas against the previous one.

:class:`Preparer` diffs each new snapshot against the previous one (with the one diff module,
:func:`app.events.diff`) and builds :class:`~widgets.table_model.RowSpec` s from the column specs
in :mod:`app.tui.columns`; it runs in the poll thread and touches no widget. Each row's payload
(:class:`SockRow`) is what the filter, the detail pane and the actions look at; its facets are
what the range and state bars select and count, its flags the marks its cells draw.

In the same thread it asks :class:`app.owners.OwnerFacts` who the owners are (the blocking part:
container engines, systemctl) and follows TCP health with :class:`app.health.HealthTracker`
(rates between two polls, stalls, retransmit storms, the host's accept-queue overflows).

Work per poll: a listener row is rebuilt only when what it shows may have changed (its socket,
owner, connection count, queue, holders, service, forward or exposure); a connection row only
when it opened, changed state or owner, or when what it shows of its health changed
(:func:`app.health.shown_health` of two polls compared as sets). Rows not rebuilt are not handed
to the table at all, so the UI thread's work follows what changed.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from app.events import Event, EventKind, diff
from app.exposure import Exposure
from app.filtering import FilterRow, row_for
from app.forwarders import Forward
from app.health import HealthTracker, Rates, Shown, queue, queue_marked, shown_health, tcp_info
from app.interfaces import Interface
from app.model import ESTABLISHED, ProcessInfo, Snapshot, Sock, empty_snapshot
from app.ports import in_ephemeral
from app.service import CONTAINER, SOCKET, Service
from app.textsafe import printable
from app.tui.columns import IFACE_COLUMNS, LISTEN_COLUMNS, QUEUE_FULL, STALLED, STORM, QueueCell
from app.tui.formatting import command_text, owner_cells, sparkline
from widgets.table_model import Column, RowSpec, values_getter

_listen_values = values_getter(LISTEN_COLUMNS)
_iface_values = values_getter(IFACE_COLUMNS)
NO_FLAGS: frozenset[str] = frozenset()
SERVICE_LIMIT = 40
FORWARD_LIMIT = 60
NETNS_LIMIT = 40


class Classifier(Protocol):
    def classify(self, ip: str) -> Exposure: ...


class Facts(Protocol):
    """Who the owners are (:class:`app.owners.OwnerFacts`; tests hand fixed ones)."""

    def prepare(self, snapshot: Snapshot, socks: Iterable[Sock] | None = None) -> None: ...

    def service(self, snapshot: Snapshot, sock: Sock) -> Service | None: ...

    def forward(self, snapshot: Snapshot, sock: Sock) -> Forward | None: ...


@dataclass(frozen=True, slots=True)
class SockRow:
    """What a socket row carries: the socket and its owner for filtering, detail and actions,
    the escaped texts its cells show, who it belongs to and its TCP health."""

    sock: Sock
    owner: ProcessInfo | None
    exposure: Exposure
    name: str = ""  # the primary owner's name, escaped
    user: str = ""
    command: str = ""
    conns: int = 0  # established connections to a listener
    process: str = ""  # the Process cell: the name, "+N" other holders, a forwarder's label
    holders: int = 0  # visible processes holding the socket (the primary owner first)
    service: Service | None = None
    service_name: str = ""  # the Service cell: unit or container name, escaped
    forward: Forward | None = None
    netns: str = ""  # the namespace's label (escaped), when sockets of several are read
    rx: float | None = None  # bytes/s received, sent (between the last two polls)
    tx: float | None = None
    rtt: float | None = None  # ms
    retrans: int | None = None  # total retransmits
    stalled: bool = False
    storm: bool = False
    queue: QueueCell | None = None  # a listener's accept queue
    queue_full: bool = False

    @property
    def exposed(self) -> bool:
        return self.exposure.beyond_loopback

    @property
    def flags(self) -> frozenset[str]:
        if not (self.stalled or self.storm or self.queue_full):
            return NO_FLAGS
        return frozenset(
            f for f, on in ((STALLED, self.stalled), (STORM, self.storm), (QUEUE_FULL, self.queue_full)) if on
        )

    def filter_row(self, new: bool = False) -> FilterRow:
        """What the filter box looks at for this row."""
        svc = self.service
        unit = container = ""
        if svc is not None:
            if svc.kind == CONTAINER:
                container = " ".join(x for x in (svc.name, svc.id, svc.image) if x)
                unit = svc.unit or ""
            elif svc.kind == SOCKET:
                unit = " ".join(x for x in (svc.unit, *svc.activates) if x)
            else:
                unit = svc.name
        return row_for(
            self.sock,
            self.owner,
            self.exposed,
            new=new,
            unit=unit,
            container=container,
            netns=self.netns,
            forward=self.forward.label() if self.forward is not None else "",
        )


def service_cell(svc: Service | None) -> str:
    """The Service cell: what people call it (a unit, a container's name), escaped."""
    if svc is None:
        return ""
    if svc.kind == SOCKET:
        return printable(svc.unit or "socket activation", SERVICE_LIMIT)
    return printable(svc.name, SERVICE_LIMIT)


def established_counter(snap: Snapshot) -> Callable[[Sock], int]:
    """Like :meth:`Snapshot.established_to` but O(1) per listener after one pass over the
    snapshot (a wildcard listener counts connections to its port on any address)."""
    by_addr: Counter[tuple[str, str, int, str, int]] = Counter()
    by_port: Counter[tuple[str, str, int, int]] = Counter()
    for s in snap.sockets:
        if s.status == ESTABLISHED:
            by_addr[(s.proto, s.family, s.laddr.port, s.laddr.ip, s.netns)] += 1
            by_port[(s.proto, s.family, s.laddr.port, s.netns)] += 1

    def count(listener: Sock) -> int:
        lp = listener.laddr
        if lp.ip in ("0.0.0.0", "::"):
            return by_port[(listener.proto, listener.family, lp.port, listener.netns)]
        return by_addr[(listener.proto, listener.family, lp.port, lp.ip, listener.netns)]

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
    return RowSpec(key, _listen_values(payload), group, payload, facets, payload.flags)


def conn_spec(key: str, payload: SockRow, values: Callable[[SockRow], tuple[object, ...]]) -> RowSpec:
    """A connection's row (``values`` from :func:`values_getter` of its columns); its facet is its
    state."""
    return RowSpec(key, values(payload), "", payload, (payload.sock.status,), payload.flags)


@dataclass(slots=True)
class Delta:
    added: list[RowSpec] = field(default_factory=list)
    updated: list[RowSpec] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HealthView:
    """One poll's health for the detail pane: the rates of the connections that moved data
    (inode -> rates), the tracker (for one connection's history) and the host's accept-queue
    overflows since the previous poll."""

    moving: Mapping[int, Rates]
    tracker: HealthTracker | None = None
    overflows: int = 0

    def history(self, inode: int | None) -> tuple[Rates, ...]:
        """The rate samples of one connection, oldest first (a copy: the poll thread goes on)."""
        h = self.tracker.get(inode) if self.tracker is not None else None
        return tuple(h.history) if h is not None else ()

    def totals(self, socks: Iterable[Sock]) -> tuple[float, float, int]:
        """(rx bytes/s, tx bytes/s, connections) summed over ``socks`` (one process's)."""
        rx = tx = 0.0
        n = 0
        for s in socks:
            if s.listening:
                continue
            n += 1
            rates = self.moving.get(s.inode) if s.inode else None
            if rates is not None:
                rx += rates.rx
                tx += rates.tx
        return rx, tx, n


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
    health: HealthView = field(default_factory=lambda: HealthView({}))
    netns_switched: str | None = None  # "all" / "current": key n took effect with this poll
    netns_rows: bool = False  # its rows name their namespace (every namespace was read)


def _in_view_events(events: list[Event], prev: Snapshot, snap: Snapshot) -> list[Event]:
    """``events`` without the sockets that opened or closed only because their namespace came
    into view or went out of it between ``prev`` and ``snap``."""
    entering = snap.namespaces.keys() - prev.namespaces.keys()
    leaving = prev.namespaces.keys() - snap.namespaces.keys()
    if not entering and not leaving:
        return events
    return [
        e
        for e in events
        if not e.sock.netns
        or not (
            (e.kind is EventKind.OPENED and e.sock.netns in entering)
            or (e.kind is EventKind.CLOSED and e.sock.netns in leaving)
        )
    ]


class Preparer:
    """Diffs each snapshot against the previous one and builds row deltas. Not thread-safe: one
    poll at a time (the dashboard never runs two).

    ``facts`` (``None``: no services or forwards) and ``health`` are asked in the poll thread.
    ``netns_rows``: show each socket's namespace (the app sets it while every namespace is read);
    Sockets of a network namespace that comes into view (``n``, or a reader that could open it
    only now) or goes out of it are not reported as opened / closed: only the rows come and go.
    """

    def __init__(
        self,
        exposure: Classifier,
        conn_columns: tuple[Column, ...],
        facts: Facts | None = None,
        health: HealthTracker | None = None,
    ) -> None:
        self.exposure = exposure
        self.conn_values = values_getter(conn_columns)
        self.facts = facts
        self.health = health if health is not None else HealthTracker()
        self.prev: Snapshot | None = None
        self._conn_keys: dict[int, str] = {}  # inode -> connection row key
        self._shown: dict[int, Shown] = {}  # inode -> what its row shows of its health
        self._netns_rows = False
        self._rebuild_conns = False
        self._listen_cache: dict[str, tuple[Sock, tuple[object, ...]]] = {}  # key -> (sock, inputs)

    @property
    def netns_rows(self) -> bool:
        return self._netns_rows

    @netns_rows.setter
    def netns_rows(self, on: bool) -> None:
        if on != self._netns_rows:
            self._netns_rows = on
            self._rebuild_conns = True  # their Netns cells: every connection row once

    # ------------------------------------------------------------------------------ rows

    def row(self, sock: Sock, snap: Snapshot, conns: int = 0) -> SockRow:
        """The payload of ``sock``'s row (poll thread: the facts were prepared for ``snap``)."""
        owner = snap.owner(sock)
        name, user = owner_cells(owner, sock)
        command = command_text(owner.cmdline) if owner is not None else ""
        holders = len(snap.holders_of(sock))
        process = name
        if holders > 1:
            process = f"{name} +{holders - 1}"
        svc = fwd = None
        facts = self.facts
        if facts is not None and sock.pid is not None:
            svc = facts.service(snap, sock)
            fwd = facts.forward(snap, sock)
            if fwd is not None:
                process = f"{process}  {fwd.label(FORWARD_LIMIT)}"
        netns = ""
        if self.netns_rows:
            info = snap.namespaces.get(sock.netns)
            if info is not None:
                netns = info.label[:NETNS_LIMIT]  # (escaped by the collector)
            else:
                netns = str(sock.netns) if sock.netns else "current"
        stats = snap.stats
        rx = tx = rtt = None
        retrans = None
        stalled = storm = False
        queue_cell = None
        full = False
        if stats:
            if sock.listening:
                q = queue(stats, sock.inode)
                if q is not None and sock.proto.value == "tcp":
                    queue_cell = QueueCell(q.current, q.max)
                    full = queue_marked(q, self.health.overflows > 0)
            else:
                info_ = tcp_info(stats, sock.inode)
                if info_ is not None:
                    rtt, retrans = info_.rtt_ms, info_.total_retrans
                    h = self.health.get(sock.inode)
                    if h is not None:
                        rx, tx = h.rates
                        stalled, storm = h.stalled, h.storm
        return SockRow(
            sock,
            owner,
            exposure=self.exposure.classify(sock.laddr.ip),
            name=name,
            user=user,
            command=command,
            conns=conns,
            process=process,
            holders=holders,
            service=svc,
            service_name=service_cell(svc),
            forward=fwd,
            netns=netns,
            rx=rx,
            tx=tx,
            rtt=rtt,
            retrans=retrans,
            stalled=stalled,
            storm=storm,
            queue=queue_cell,
            queue_full=full,
        )

    def _listeners(self, snap: Snapshot, keyed: Mapping[str, Sock], opened: set[str], listen: Delta) -> None:
        """Every listener's row, rebuilt only when what it shows may have changed: the same socket
        object (the collector keeps those of unchanged sockets), owner, connection count, queue,
        holders, service, forward and exposure as last poll keep last poll's row, which is then
        not handed to the table at all."""
        count = established_counter(snap)
        stats = snap.stats
        facts = self.facts
        overflowed = self.health.overflows > 0
        classify = self.exposure.classify
        cache: dict[str, tuple[Sock, tuple[object, ...]]] = {}
        old = self._listen_cache
        for key, sock in keyed.items():
            if not sock.listening:
                continue
            entry = stats.get(sock.inode) if stats and sock.inode else None
            pid = sock.pid
            inputs: tuple[object, ...] = (
                snap.processes.get(pid) if pid is not None else None,
                count(sock),
                entry[:2] if entry is not None else None,
                overflowed,
                snap.holders.get(sock.inode) if sock.inode else None,
                facts.service(snap, sock) if facts is not None and pid is not None else None,
                facts.forward(snap, sock) if facts is not None and pid is not None else None,
                classify(sock.laddr.ip),
                snap.namespaces.get(sock.netns) if self._netns_rows else None,
            )
            cache[key] = (sock, inputs)
            last = old.get(key)
            if last is not None and last[0] is sock and last[1] == inputs and key not in opened:
                continue  # nothing it shows changed
            spec = listen_spec(key, self.row(sock, snap, inputs[1]), snap.ephemeral)  # type: ignore[arg-type]
            (listen.added if key in opened else listen.updated).append(spec)
        self._listen_cache = cache

    # --------------------------------------------------------------------------- prepare

    def prepare(self, snap: Snapshot) -> Prepared:
        first = self.prev is None
        prev = self.prev or empty_snapshot()
        if self.facts is not None:
            try:
                self.facts.prepare(snap)  # blocking (engines, systemctl): this is the poll thread
            except Exception:  # who the owners belong to is a courtesy: never fail a poll for it
                pass
        tracker = self.health
        tracker.update(snap.stats, snap.taken_at, snap.listen_counters)
        events = diff(prev, snap)
        reported = _in_view_events(events, prev, snap) if snap.namespaces or prev.namespaces else events
        keyed = snap.keyed()
        columns = self.conn_values
        conn_keys = self._conn_keys
        listen, conns = Delta(), Delta()
        opened: set[str] = set()
        built: set[str] = set()
        for ev in events:
            sock = ev.sock
            if sock.listening:
                if ev.kind is EventKind.OPENED:
                    opened.add(ev.key)
                elif ev.kind is EventKind.CLOSED:
                    listen.gone.append(ev.key)
                else:
                    listen.changed.append(ev.key)
                continue
            if ev.kind is EventKind.CLOSED:
                conns.gone.append(ev.key)
                if sock.inode and conn_keys.get(sock.inode) == ev.key:
                    del conn_keys[sock.inode]
                continue
            if sock.inode:
                conn_keys[sock.inode] = ev.key
            if ev.key in built:
                continue  # state and owner changed at once: one row
            built.add(ev.key)
            spec = conn_spec(ev.key, self.row(sock, snap), columns)
            if ev.kind is EventKind.OPENED:
                conns.added.append(spec)
            else:
                conns.updated.append(spec)
                conns.changed.append(ev.key)
        # connections whose health as shown changed (rates, RTT, retransmits, marks)
        shown = shown_health(snap.stats, tracker)
        moved = {inode for inode, _values in shown.items() - self._shown.items()}
        moved.update(self._shown.keys() - shown.keys())  # no longer tracked (closed, or no stats now)
        for inode in moved:
            key = conn_keys.get(inode)
            if key is None or key in built:
                continue
            now = keyed.get(key)
            if now is None or now.inode != inode:
                continue
            built.add(key)
            conns.updated.append(conn_spec(key, self.row(now, snap), columns))
        self._shown = shown
        if self._rebuild_conns:
            self._rebuild_conns = False
            for key, sock in keyed.items():
                if not sock.listening and key not in built:
                    conns.updated.append(conn_spec(key, self.row(sock, snap), columns))
        self._listeners(snap, keyed, opened, listen)
        self.prev = snap
        moving = {i: v[0] for i, v in shown.items() if v[0].rx or v[0].tx}
        health = HealthView(moving, tracker, tracker.overflows)
        return Prepared(
            snap,
            keyed,
            first,
            listen,
            conns,
            events=[] if first else reported,
            health=health,
            netns_rows=self._netns_rows,
        )


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
