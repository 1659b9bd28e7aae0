"""Row preparation, off the UI thread: each snapshot becomes row deltas against the previous one.

:class:`Preparer` diffs each new snapshot against the previous one (with the one diff module,
:func:`app.events.diff`) and builds :class:`~widgets.table_model.RowSpec` s; it runs in the poll
thread and touches no widget. Each row's payload (:class:`SockRow`) is what the filter, the
detail pane and the actions look at, and what its cells are read from (the column specs in
:mod:`app.tui.columns`; the dashboard's models are ``derived``: no tuple of cells per row); its
facets are what the range and state bars select and count, its flags the marks its cells draw.

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
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Protocol

from app.churn import Churned
from app.events import Event, EventKind
from app.exposure import Exposure
from app.fast.statstable import StatsTable
from app.filtering import Memo, contains, own_text, owner_texts
from app.forwarders import Forward
from app.health import HealthTracker, Rates, Shown, queue, queue_marked, shown_health, tcp_info
from app.interfaces import Interface
from app.model import ESTABLISHED, Endpoint, ProcessInfo, Snapshot, Sock, empty_snapshot
from app.ports import PortRange, in_ephemeral
from app.service import CONTAINER, SOCKET, Service
from app.textsafe import printable
from app.tui.columns import IFACE_COLUMNS, QUEUE_FULL, STALLED, STORM, QueueCell
from app.tui.formatting import command_text, owner_cells, sparkline
from app.tui.livehealth import LiveHealth
from app.tui.tracking import SnapshotTracker
from widgets.table_model import RowSpec, values_getter

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
    # the two parts of the haystack plain words are looked for in (app.filtering.contains), made
    # once in the poll thread (Preparer.row), not at every key: the owner's (shared by the rows of
    # a process) and the socket's own. The filter reads the rest through a RowView: no copy of
    # every field the filter knows is kept per row (a FilterRow was some 185 bytes a socket)
    _owner_hay: str = field(default="", compare=False, repr=False)
    _own_hay: str = field(default="", compare=False, repr=False)

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

    def prepare_filter(self) -> None:
        """Make the haystack's two parts (the poll thread does, for every row it builds)."""
        if self._own_hay:
            return
        sock = self.sock
        unit, container = service_terms(self.service)
        raddr = sock.raddr
        own = own_text(
            sock.laddr.ip,
            sock.laddr.port,
            raddr.ip if raddr else "",
            raddr.port if raddr else None,
            sock.pid,
            sock.status,
            sock.proto.value,
            unit,
            container,
            self.forward.label() if self.forward is not None else "",
        )
        object.__setattr__(self, "_own_hay", own)
        object.__setattr__(self, "_owner_hay", owner_texts(self.owner)[1] if self.owner is not None else "")

    def filter_row(self, new: bool = False) -> RowView:
        """What the filter box looks at for this row (a view of it; ``new``: marked as new)."""
        return RowView(self, new)


@lru_cache(maxsize=1024)
def service_terms(svc: Service | None) -> tuple[str, str]:
    """(unit, container) the filter's ``unit:`` and ``container:`` look in, of a row's service."""
    if svc is None:
        return "", ""
    if svc.kind == CONTAINER:
        return svc.unit or "", " ".join(x for x in (svc.name, svc.id, svc.image) if x)
    if svc.kind == SOCKET:
        return " ".join(x for x in (svc.unit, *svc.activates) if x), ""
    return svc.name, ""


class RowView:
    """What the filter looks at (app.filtering.Filterable) of one dashboard row, read from its
    payload when asked. The table's filter pass points one view at each row in turn (the UI
    thread: no object per row and key)."""

    __slots__ = ("memo", "new", "p")

    def __init__(self, p: SockRow, new: bool = False) -> None:
        self.p = p
        self.new = new
        # needle -> owner part -> found, kept by a view that the filter points at row after row
        # (app.tui.state.text_predicate): each process's part is searched once a needle
        self.memo: dict[str, Memo] | None = None

    @property
    def proto(self) -> str:
        return self.p.sock.proto.value

    @property
    def local_ip(self) -> str:
        return self.p.sock.laddr.ip

    @property
    def local_port(self) -> int:
        return self.p.sock.laddr.port

    @property
    def remote_ip(self) -> str:
        raddr = self.p.sock.raddr
        return raddr.ip if raddr else ""

    @property
    def remote_port(self) -> int | None:
        raddr = self.p.sock.raddr
        return raddr.port if raddr else None

    @property
    def state(self) -> str:
        return self.p.sock.status

    @property
    def pid(self) -> int | None:
        return self.p.sock.pid

    @property
    def process(self) -> str:
        owner = self.p.owner
        return owner.name if owner is not None else ""

    @property
    def user(self) -> str:
        owner = self.p.owner
        return owner.username if owner is not None else ""

    @property
    def command(self) -> str:
        owner = self.p.owner
        return owner_texts(owner)[0] if owner is not None else ""

    @property
    def range(self) -> PortRange:
        return self.p.sock.range

    @property
    def exposed(self) -> bool:
        return self.p.exposure.beyond_loopback

    @property
    def unit(self) -> str:
        return service_terms(self.p.service)[0]

    @property
    def container(self) -> str:
        return service_terms(self.p.service)[1]

    @property
    def netns(self) -> str:
        return self.p.netns

    @property
    def forward(self) -> str:
        fwd = self.p.forward
        return fwd.label() if fwd is not None else ""

    def contains(self, needle: str) -> bool:
        p = self.p
        if not p._own_hay:
            p.prepare_filter()
        memo = self.memo
        if memo is None:
            return contains(p._owner_hay, p._own_hay, needle)
        seen = memo.get(needle)
        if seen is None:
            seen = memo[needle] = Memo()
        return contains(p._owner_hay, p._own_hay, needle, seen)


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
    return RowSpec(key, (), group, payload, facets, payload.flags)  # (the model's derived=True)


def conn_spec(key: str, payload: SockRow) -> RowSpec:
    """A connection's row (its cells are read from ``payload``: the model is ``derived``); its
    facet is its state (one tuple per state, shared by the rows in it)."""
    status = payload.sock.status
    facets = _STATE_FACETS.get(status)
    if facets is None:
        facets = _STATE_FACETS.setdefault(status, (status,))
    return RowSpec(key, (), "", payload, facets, payload.flags)


_STATE_FACETS: dict[str, tuple[str]] = {}  # state -> (state,): a handful of states


@dataclass(slots=True)
class Delta:
    added: list[RowSpec] = field(default_factory=list)
    updated: list[RowSpec] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # closed: marked for a refresh, then removed
    renamed: dict[str, str] = field(default_factory=dict)  # old key -> new key of a continuing row
    dropped: list[str] = field(default_factory=list)  # keys no longer used: removed at once


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

    snapshot: Snapshot  # without its per-socket stats (``stats`` None): the rows show them
    keyed: dict[str, Sock]  # row key -> socket, until the next poll is prepared (the tracker's)
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


def _without_stats(snap: Snapshot) -> Snapshot:
    """``snap`` with the same sockets, processes and holders but no per-socket stats."""
    return snap if snap.stats is None else replace(snap, stats=None)


_NONE: dict[Any, int] = {}  # (never written)


def _queues(
    stats: Mapping[int, tuple[int | None, ...]] | None, inode: int | None
) -> tuple[int | None, ...] | None:
    """The (rqueue, wqueue) of the socket ``inode``: a StatsTable reads those two words alone,
    not the whole row (each poll asks it of every TCP listener)."""
    if not stats or not inode:
        return None
    if isinstance(stats, StatsTable):
        return stats.queues(inode)
    entry = stats.get(inode)
    return entry[:2] if entry is not None else None


def _add(counts: dict[Any, int], key: object, sign: int) -> None:
    n = counts.get(key, 0) + sign
    if n:
        counts[key] = n
    else:
        counts.pop(key, None)


def _discard(index: dict[Any, set[str]], at: object, key: str) -> None:
    keys = index.get(at)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[at]


class Preparer:
    """Follows each snapshot against the previous one and builds row deltas. Not thread-safe: one
    poll at a time (the dashboard never runs two).

    ``facts`` (``None``: no services or forwards) and ``health`` are asked in the poll thread.
    ``netns_rows``: show each socket's namespace (the app sets it while every namespace is read);
    Sockets of a network namespace that comes into view (``n``, or a reader that could open it
    only now) or goes out of it are not reported as opened / closed: only the rows come and go.

    Work per poll follows what changed: :class:`~app.tui.tracking.SnapshotTracker` finds the
    sockets that opened, closed or changed (and their events and row keys) without a pass over
    the others in Python; :class:`~app.tui.livehealth.LiveHealth` updates only the connections
    whose counters moved; a listener's inputs are looked at again only when one of them may have
    changed (its socket, the connections to its port, its process, its queue, its holders, its
    owner's service, its address's exposure, the namespaces).
    """

    def __init__(
        self,
        exposure: Classifier,
        facts: Facts | None = None,
        health: HealthTracker | None = None,
    ) -> None:
        self.exposure = exposure
        self.facts = facts
        self.health: HealthTracker = health if health is not None else LiveHealth()
        self.prev: Snapshot | None = None
        self.tracker = SnapshotTracker()
        # inode -> connection row key (the rows whose health moved are found by it); an entry
        # goes when its socket does (Preparer.prepare: the step's stale sockets), so no second map
        # by key is kept (some 50 bytes a connection at 100k)
        self._conn_keys: dict[int, str] = {}
        self._shown: dict[int, Shown] = {}  # (a plain HealthTracker) inode -> its health as shown
        self._netns_rows = False
        self._netns_changed = False  # the Netns cells: every row once
        self._listen_cache: dict[str, tuple[Sock, tuple[object, ...]]] = {}  # key -> (sock, inputs)
        # the listeners now, and indexes to find the ones an input of which may have changed
        self._listeners: dict[str, Sock] = {}
        self._by_port: dict[tuple[object, ...], set[str]] = {}  # (proto, family, port, netns)
        self._by_pid: dict[int, set[str]] = {}
        self._by_ip: dict[str, set[str]] = {}
        self._by_inode: dict[int, str] = {}
        self._tcp: dict[str, int] = {}  # TCP listeners with an inode: their accept queues
        # ESTABLISHED sockets by (proto, family, netns), then by local address (the sockets' own
        # Endpoint objects as keys) and by local port: nearly one entry per connection (a client
        # end's port is its own), so no tuple is made per entry, and an entry goes at zero
        self._est_addr: dict[tuple[object, ...], dict[Endpoint, int]] = {}
        self._est_port: dict[tuple[object, ...], dict[int, int]] = {}
        self._exposures: dict[str, Exposure] = {}  # listener address -> its exposure last poll
        self._services: dict[int, Service | None] = {}  # listener pid -> its service last poll
        self._overflowed = False
        # the maps that sockets opening and closing churn, kept at their size (app.churn)
        self._churn = Churned(
            lambda: (
                self._conn_keys,
                self._shown,
                self._listen_cache,
                self._listeners,
                self._by_inode,
                self._tcp,
                *self._est_addr.values(),
                *self._est_port.values(),
            )
        )

    @property
    def netns_rows(self) -> bool:
        return self._netns_rows

    @netns_rows.setter
    def netns_rows(self, on: bool) -> None:
        if on != self._netns_rows:
            self._netns_rows = on
            self._netns_changed = True

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
        payload = SockRow(
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
        payload.prepare_filter()  # here in the poll thread, not at the first key typed
        return payload

    # ----------------------------------------------------------------- what each poll changed

    def _count(self, listener: Sock) -> int:
        """Established connections to ``listener`` (a wildcard one: to its port on any address)."""
        lp = listener.laddr
        bucket = (listener.proto, listener.family, listener.netns)
        if lp.ip in ("0.0.0.0", "::"):
            return self._est_port.get(bucket, _NONE).get(lp.port, 0)
        return self._est_addr.get(bucket, _NONE).get(lp, 0)

    def _count_connections(self, socks: Iterable[Sock], sign: int, ports: set[tuple[object, ...]]) -> None:
        est_addr, est_port = self._est_addr, self._est_port
        for s in socks:
            if s.status == ESTABLISHED:
                bucket = (s.proto, s.family, s.netns)
                laddr = s.laddr
                _add(est_addr.get(bucket) or est_addr.setdefault(bucket, {}), laddr, sign)
                _add(est_port.get(bucket) or est_port.setdefault(bucket, {}), laddr.port, sign)
                ports.add((s.proto, s.family, laddr.port, s.netns))

    def _forget_listener(self, key: str) -> None:
        sock = self._listeners.pop(key, None)
        self._listen_cache.pop(key, None)
        if sock is None:
            return
        _discard(self._by_port, (sock.proto, sock.family, sock.laddr.port, sock.netns), key)
        if sock.pid is not None:
            _discard(self._by_pid, sock.pid, key)
        _discard(self._by_ip, sock.laddr.ip, key)
        if sock.inode and self._by_inode.get(sock.inode) == key:
            del self._by_inode[sock.inode]
        self._tcp.pop(key, None)

    def _add_listener(self, key: str, sock: Sock) -> None:
        self._forget_listener(key)
        self._listeners[key] = sock
        self._by_port.setdefault((sock.proto, sock.family, sock.laddr.port, sock.netns), set()).add(key)
        if sock.pid is not None:
            self._by_pid.setdefault(sock.pid, set()).add(key)
        self._by_ip.setdefault(sock.laddr.ip, set()).add(key)
        if sock.inode:
            self._by_inode[sock.inode] = key
            if sock.proto.value == "tcp":
                self._tcp[key] = sock.inode

    def _forget_connections(self, stale: Iterable[Sock], keyed: Mapping[str, Sock]) -> None:
        """The connection keys of ``stale`` sockets (gone, or another object now) whose key is no
        longer a connection of that inode (a socket of the same inode rebuilt at a key is
        mapped to it already)."""
        conn_keys = self._conn_keys
        for s in stale:
            inode = s.inode
            if not inode:
                continue
            key = conn_keys.get(inode)
            if key is None:
                continue
            now = keyed.get(key)
            if now is None or now.inode != inode or now.listening:
                del conn_keys[inode]

    def _listener_candidates(
        self, snap: Snapshot, prev: Snapshot, ports: set[tuple[object, ...]]
    ) -> set[str]:
        """Listener keys an input of which may have changed since the last poll."""
        out: set[str] = set()
        by_port, by_pid, by_inode = self._by_port, self._by_pid, self._by_inode
        for port in ports:
            out.update(by_port.get(port, ()))
        before, now = prev.processes, snap.processes
        for pid in by_pid:
            old, new = before.get(pid), now.get(pid)
            if old is not new and old != new:
                out.update(by_pid[pid])
        if snap.holders is not prev.holders:
            for inode, _pids in snap.holders.items() ^ prev.holders.items():
                key = by_inode.get(inode)
                if key is not None:
                    out.add(key)
        stats = snap.stats
        cache = self._listen_cache
        for key, inode in self._tcp.items():
            last = cache.get(key)
            if last is None or last[1][2] != _queues(stats, inode):
                out.add(key)
        overflowed = self.health.overflows > 0
        if overflowed != self._overflowed:
            self._overflowed = overflowed
            out.update(self._tcp)
        facts = self.facts
        if facts is not None:
            services = self._services
            for pid, keys in by_pid.items():
                if pid == 1:  # socket activation: per socket, and few of them
                    out.update(keys)
                    continue
                svc = facts.service(snap, self._listeners[next(iter(keys))])
                if pid not in services or services[pid] != svc:
                    services[pid] = svc
                    out.update(keys)
            for pid in [p for p in services if p not in by_pid]:
                del services[pid]
        classify = self.exposure.classify
        exposures = self._exposures
        for ip, keys in self._by_ip.items():
            exposure = classify(ip)
            if exposures.get(ip) != exposure:
                exposures[ip] = exposure
                out.update(keys)
        if self._netns_rows and snap.namespaces != prev.namespaces:
            out.update(self._listeners)
        return out

    def _listener_rows(self, snap: Snapshot, keys: Iterable[str], opened: set[str], listen: Delta) -> None:
        """The rows of ``keys`` (listeners), rebuilt only when what they show may have changed: the
        same socket object (the collector keeps those of unchanged sockets), owner, connection
        count, queue, holders, service, forward and exposure as last poll keep last poll's row,
        which is then not handed to the table at all."""
        stats = snap.stats
        facts = self.facts
        overflowed = self.health.overflows > 0
        classify = self.exposure.classify
        cache = self._listen_cache
        for key in keys:
            sock = self._listeners.get(key)
            if sock is None:
                continue
            pid = sock.pid
            inputs: tuple[object, ...] = (
                snap.processes.get(pid) if pid is not None else None,
                self._count(sock),
                _queues(stats, sock.inode),
                overflowed,
                snap.holders.get(sock.inode) if sock.inode else None,
                facts.service(snap, sock) if facts is not None and pid is not None else None,
                facts.forward(snap, sock) if facts is not None and pid is not None else None,
                classify(sock.laddr.ip),
                snap.namespaces.get(sock.netns) if self._netns_rows else None,
            )
            last = cache.get(key)
            cache[key] = (sock, inputs)
            if last is not None and last[0] is sock and last[1] == inputs and key not in opened:
                continue  # nothing it shows changed
            spec = listen_spec(key, self.row(sock, snap, inputs[1]), snap.ephemeral)  # type: ignore[arg-type]
            (listen.added if key in opened else listen.updated).append(spec)

    # --------------------------------------------------------------------------- prepare

    def prepare(self, snap: Snapshot) -> Prepared:
        first = self.prev is None
        prev = self.prev or empty_snapshot()
        # What outlives this call (the tracker's and the preparer's previous snapshot, the one the
        # UI shows and the one before it) is this snapshot without its per-socket stats: only the
        # rows and the health tracker read those, here; kept, each snapshot's (a tuple of tcp_info
        # fields per socket, about 250 bytes) stayed alive for two more polls.
        kept = _without_stats(snap)
        step = self.tracker.step(kept)
        keyed = step.keyed
        listen, conns = Delta(), Delta()
        # the tables' rows that go (closed: marked for a refresh; moved to another key: at once)
        closed = {e.key for e in step.events if e.kind is EventKind.CLOSED}
        for old, new in step.renamed.items():
            was_listener = old in self._listeners
            delta = listen if was_listener else conns
            if keyed[new].listening is was_listener:
                delta.renamed[old] = new
            else:  # (paired with a socket of the other table's kind: that one is built anew)
                delta.dropped.append(old)
        for key in (*step.dropped, *step.renamed):
            if key in self._listeners:
                self._forget_listener(key)
                if key not in closed and key in step.dropped:
                    listen.dropped.append(key)
            elif key not in closed and key in step.dropped:
                conns.dropped.append(key)
        ports: set[tuple[object, ...]] = set()
        self._count_connections(step.stale, -1, ports)
        self._count_connections(step.fresh, 1, ports)
        rebuilt_listeners: list[str] = []
        rebuilt_conns: list[tuple[str, Sock]] = []
        for key, sock in step.rebuilt:
            if sock.listening:
                if key not in self._listeners:  # (a bound socket that started to listen: its row)
                    conns.dropped.append(key)
                self._add_listener(key, sock)
                rebuilt_listeners.append(key)
            else:
                if key in self._listeners:
                    self._forget_listener(key)
                    listen.dropped.append(key)
                if sock.inode:
                    self._conn_keys[sock.inode] = key
                rebuilt_conns.append((key, sock))
        self._forget_connections(step.stale, keyed)
        if self.facts is not None:
            try:  # blocking (engines, systemctl): this is the poll thread
                pid1 = [self._listeners[k] for k in self._by_pid.get(1, ())]
                self.facts.prepare(snap, pid1)
            except Exception:  # who the owners belong to is a courtesy: never fail a poll for it
                pass
        tracker = self.health
        tracker.update(snap.stats, snap.taken_at, snap.listen_counters)
        events = step.events
        reported = _in_view_events(events, prev, snap) if snap.namespaces or prev.namespaces else events
        opened: set[str] = set()
        changed: set[str] = set()
        for ev in events:
            if ev.kind is EventKind.CLOSED:
                (listen if ev.sock.listening else conns).gone.append(ev.key)
            elif ev.kind is EventKind.OPENED:
                opened.add(ev.key)
            else:
                changed.add(ev.key)
        built: set[str] = set()
        for key, sock in rebuilt_conns:
            built.add(key)
            spec = conn_spec(key, self.row(sock, snap))
            if key in opened:
                conns.added.append(spec)
            else:
                conns.updated.append(spec)
                if key in changed:
                    conns.changed.append(key)
        # connections whose health as shown changed (rates, RTT, retransmits, marks)
        if isinstance(tracker, LiveHealth):
            moved: set[int] = tracker.changed
            moving = dict(tracker.moving)
        else:
            shown = shown_health(snap.stats, tracker)
            moved = {inode for inode, _values in shown.items() - self._shown.items()}
            moved.update(self._shown.keys() - shown.keys())  # no longer tracked (closed, or no stats now)
            self._shown = shown
            moving = {i: v[0] for i, v in shown.items() if v[0].rx or v[0].tx}
        conn_keys = self._conn_keys
        for inode in moved:
            at = conn_keys.get(inode)
            if at is None or at in built:
                continue
            now = keyed.get(at)
            if now is None or now.inode != inode:  # (_forget_connections keeps only connections)
                continue
            built.add(at)
            conns.updated.append(conn_spec(at, self.row(now, snap)))
        netns_changed, self._netns_changed = self._netns_changed, False
        if netns_changed:  # their Netns cells: every connection row once
            for key, sock in keyed.items():
                if not sock.listening and key not in built:
                    conns.updated.append(conn_spec(key, self.row(sock, snap)))
        candidates = self._listener_candidates(snap, prev, ports)
        candidates.update(rebuilt_listeners)
        if netns_changed:
            candidates.update(self._listeners)
        for key in (k for k in rebuilt_listeners if k in changed):
            listen.changed.append(key)
        self._listener_rows(snap, candidates, opened, listen)
        self.prev = kept
        self._churn.check()
        health = HealthView(moving, tracker, tracker.overflows)
        return Prepared(
            kept,
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
