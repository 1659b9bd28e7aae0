"""The dashboard's data side, without Textual: snapshots -> table rows, summaries and deltas.

:class:`Preparer` turns each new snapshot into deltas against the previous one (using the one
diff module, :func:`app.events.diff`) and runs in the poll thread. :class:`Dashboard` applies
deltas to the table models on the UI thread; ``Dashboard.apply_snapshot`` does both and is the
headless entry point the benchmark times.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.events import Event, EventKind, diff
from app.exposure import Exposure
from app.filtering import Filter, row_for
from app.interfaces import Interface
from app.model import ESTABLISHED, Endpoint, ProcessInfo, Snapshot, Sock, empty_snapshot, format_endpoint
from app.ports import PortRange, in_ephemeral
from app.textsafe import printable
from widgets.table_model import Column, Group, Mark, Row, RowSpec, TableModel

NAME_LIMIT = 64
CMD_LIMIT = 400


class Classifier(Protocol):
    def classify(self, ip: str) -> Exposure: ...


# ------------------------------------------------------------------------------ formatting


def fmt_age(born: Any, now: float) -> str:
    if born is None:
        return ""
    secs = max(0, int(now - float(born)))
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02d}s" if secs < 600 else f"{secs // 60}m"
    if secs < 86400:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 86400}d{secs % 86400 // 3600}h"


def fmt_pid(pid: Any, _now: float = 0.0) -> str:
    return "-" if pid is None else str(pid)


def fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    value = float(rate)
    for unit in ("B/s", "KB/s", "MB/s", "GB/s"):
        if value < 1024 or unit == "GB/s":
            return f"{value:.0f} {unit}" if unit == "B/s" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB/s"


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 10) -> str:
    """A one-line bar chart of the last ``width`` values (scaled to their maximum)."""
    data = list(values)[-width:]
    if not data:
        return ""
    top = max(data)
    if top <= 0:
        return SPARK[0] * len(data)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in data)


def _not_local(label: Any) -> bool:
    return label not in ("loopback", "unknown address", "lo", "", None)


LISTEN_COLUMNS = (
    Column("proto", "Proto", 5, priority=2),
    Column("address", "Address", 15, priority=3, flex=1, max_width=40),
    Column("port", "Port", 7, priority=0, align="right"),
    Column("exposure", "Exposure", 14, priority=5, emphasis=_not_local),
    Column("pid", "PID", 7, priority=4, align="right", format=fmt_pid),
    Column("process", "Process", 14, priority=1, flex=2),
    Column("user", "User", 8, priority=7),
    Column("conns", "Conns", 5, priority=6, align="right"),
    Column("age", "Age", 6, priority=8, align="right", format=fmt_age, age=True),
)
L_PROTO, L_ADDR, L_PORT, L_EXPOSURE, L_PID, L_PROCESS, L_USER, L_CONNS, L_AGE = range(9)

_ATTENTION_STATES = ("CLOSE_WAIT", "SYN_SENT", "SYN_RECV", "LAST_ACK", "FIN_WAIT1", "CLOSING")


def _remote_text(value: Any, _now: float) -> str:
    if not value:
        return "-"
    return format_endpoint(value[0], value[1])


def conn_columns(remote_format: Callable[[Any, float], str] = _remote_text) -> tuple[Column, ...]:
    return (
        Column("proto", "Proto", 5, priority=4),
        Column("state", "State", 11, priority=1, emphasis=lambda v: v in _ATTENTION_STATES),
        Column("local", "Local", 21, priority=0, flex=1, max_width=47),
        Column("remote", "Remote", 21, priority=2, flex=2, format=remote_format),
        Column("pid", "PID", 7, priority=5, align="right", format=fmt_pid),
        Column("process", "Process", 14, priority=3, flex=1),
        Column("user", "User", 8, priority=6),
        Column("age", "Age", 6, priority=7, align="right", format=fmt_age, age=True),
    )


C_PROTO, C_STATE, C_LOCAL, C_REMOTE, C_PID, C_PROCESS, C_USER, C_AGE = range(8)

IFACE_COLUMNS = (
    Column("name", "Interface", 12, priority=0),
    Column("up", "State", 5, priority=1),
    Column("ipv4", "IPv4", 15, priority=2, flex=1),
    Column("ipv6", "IPv6", 20, priority=7, flex=1),
    Column("gateway", "Gateway", 15, priority=6),
    Column("mtu", "MTU", 5, priority=8, align="right"),
    Column("speed", "Speed", 10, priority=9, align="right"),
    Column("rx", "Receive", 10, priority=3, align="right", format=lambda v, _n: fmt_rate(v)),
    Column("rx_spark", "", 10, priority=5),
    Column("tx", "Send", 10, priority=4, align="right", format=lambda v, _n: fmt_rate(v)),
    Column("tx_spark", "", 10, priority=5),
)

RANGE_GROUPS = tuple(Group(r.value, r.heading) for r in PortRange)


# ------------------------------------------------------------------------------ row payloads


@dataclass(frozen=True, slots=True)
class SockRow:
    """What a socket row carries besides its cells: for filtering, detail and actions."""

    sock: Sock
    owner: ProcessInfo | None
    exposed: bool


def owner_cells(owner: ProcessInfo | None, sock: Sock) -> tuple[str, str]:
    if owner is not None:
        return printable(owner.name, NAME_LIMIT) or "?", printable(owner.username, 32)
    if sock.pid is not None:
        return "?", ""
    return "", ""


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


def listen_spec(key: str, sock: Sock, snap: Snapshot, exposure: Exposure, conns: int) -> RowSpec:
    owner = snap.owner(sock)
    name, user = owner_cells(owner, sock)
    values = (
        sock.proto.value,
        sock.laddr.ip,
        sock.laddr.port,
        exposure.label,
        sock.pid,
        name,
        user,
        conns,
        None,
    )
    return RowSpec(key, values, sock.range.value, SockRow(sock, owner, exposure.beyond_loopback))


def conn_spec(key: str, sock: Sock, snap: Snapshot, exposure: Exposure) -> RowSpec:
    owner = snap.owner(sock)
    name, user = owner_cells(owner, sock)
    remote: tuple[str, int] | None = tuple(sock.raddr) if sock.raddr else None  # type: ignore[assignment]
    values = (
        sock.proto.value,
        sock.status,
        str(sock.laddr),
        remote,
        sock.pid,
        name,
        user,
        None,
    )
    return RowSpec(key, values, "", SockRow(sock, owner, exposure.beyond_loopback))


# ----------------------------------------------------------------------------- summaries


@dataclass(frozen=True, slots=True)
class RangeSummary:
    listeners: int
    per_range: dict[str, int]
    exposed: int
    ephemeral: int
    hidden_owners: int
    privileged: bool
    ephemeral_bounds: tuple[int, int]


@dataclass(slots=True)
class Delta:
    added: list[RowSpec] = field(default_factory=list)
    updated: list[RowSpec] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.added) + len(self.updated) + len(self.gone)


@dataclass(slots=True)
class Prepared:
    """One poll's result, ready to apply on the UI thread."""

    snapshot: Snapshot
    keyed: dict[str, Sock]
    first: bool
    listen: Delta
    conns: Delta
    summary: RangeSummary
    state_counts: dict[str, int]
    interfaces: list[RowSpec] | None = None
    error: str | None = None
    events: list[Event] = field(default_factory=list)  # empty on the first poll (the starting point)


class Preparer:
    """Diffs each snapshot against the previous one and builds row deltas. Not thread-safe: one
    poll at a time (the dashboard never runs two)."""

    def __init__(self, exposure: Classifier) -> None:
        self.exposure = exposure
        self.prev: Snapshot | None = None

    def prepare(self, snap: Snapshot) -> Prepared:
        first = self.prev is None
        prev = self.prev or empty_snapshot()
        events = diff(prev, snap)
        keyed = snap.keyed()
        classify = self.exposure.classify
        listen, conns = Delta(), Delta()
        opened: set[str] = set()
        for ev in events:
            is_listener = ev.sock.listening
            if ev.kind is EventKind.OPENED:
                if is_listener:
                    opened.add(ev.key)
                else:
                    conns.added.append(conn_spec(ev.key, ev.sock, snap, classify(ev.sock.laddr.ip)))
            elif ev.kind is EventKind.CLOSED:
                (listen if is_listener else conns).gone.append(ev.key)
            else:  # state or owner changed
                if is_listener:
                    listen.changed.append(ev.key)
                else:
                    conns.updated.append(conn_spec(ev.key, ev.sock, snap, classify(ev.sock.laddr.ip)))
                    conns.changed.append(ev.key)
        count = established_counter(snap)
        per_range: Counter[str] = Counter()
        exposed = ephemeral = 0
        n_listeners = 0
        for key, sock in keyed.items():
            if not sock.listening:
                continue
            n_listeners += 1
            exp = classify(sock.laddr.ip)
            spec = listen_spec(key, sock, snap, exp, count(sock))
            (listen.added if key in opened else listen.updated).append(spec)
            per_range[spec.group] += 1
            exposed += exp.beyond_loopback
            ephemeral += in_ephemeral(sock.laddr.port, snap.ephemeral)
        states = Counter(s.status for s in snap.sockets if not s.listening)
        summary = RangeSummary(
            listeners=n_listeners,
            per_range=dict(per_range),
            exposed=exposed,
            ephemeral=ephemeral,
            hidden_owners=snap.hidden_owners,
            privileged=snap.privileged,
            ephemeral_bounds=snap.ephemeral,
        )
        self.prev = snap
        return Prepared(
            snap, keyed, first, listen, conns, summary, dict(states), events=[] if first else events
        )


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
            v4 = ", ".join(a.address for a in itf.addresses if a.family == "ipv4")
            v6 = ", ".join(a.address for a in itf.addresses if a.family == "ipv6")
            values = (
                printable(itf.name, 32),
                "up" if itf.is_up else "down",
                v4 or "-",
                v6 or "-",
                ", ".join(itf.gateways) or "-",
                itf.mtu or None,
                f"{itf.speed_mbps} Mb/s" if itf.speed_mbps else "-",
                rx_rate,
                sparkline(self._rx.get(itf.name, ())),
                tx_rate,
                sparkline(self._tx.get(itf.name, ())),
            )
            specs.append(RowSpec(itf.name, values, "", itf))
        for name in [n for n in self._last if n not in seen]:
            self._last.pop(name, None)
            self._rx.pop(name, None)
            self._tx.pop(name, None)
        return specs


# ------------------------------------------------------------------------------ filtering

RANGE_CHOICES = ("all", "well-known", "registered", "dynamic", "exposed", "ephemeral")


def sock_predicate(
    flt: Filter | None,
    range_choice: str = "all",
    ephemeral: tuple[int, int] = (32768, 60999),
    state: str | None = None,
) -> Callable[[Row], bool] | None:
    """The table predicate for a text filter, a range selection and a state selection."""
    checks: list[Callable[[Row], bool]] = []
    if range_choice == "exposed":
        checks.append(lambda r: r.payload.exposed)
    elif range_choice == "ephemeral":
        checks.append(lambda r: in_ephemeral(r.payload.sock.laddr.port, ephemeral))
    elif range_choice != "all":
        checks.append(lambda r: r.payload.sock.range.value == range_choice)
    if state is not None:
        checks.append(lambda r: r.payload.sock.status == state)
    if flt is not None and not flt.is_empty:
        matches = flt.matches

        def text_ok(r: Row) -> bool:
            p: SockRow = r.payload
            return matches(row_for(p.sock, p.owner, p.exposed, new=r.mark is Mark.NEW))

        checks.append(text_ok)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda r: all(c(r) for c in checks)


# ------------------------------------------------------------------------------- dashboard


class Dashboard:
    """The dashboard's tables and summaries. ``apply`` is what one refresh costs on the UI side."""

    def __init__(
        self,
        exposure: Classifier,
        clock: Callable[[], float] = time.time,
        remote_format: Callable[[Any, float], str] = _remote_text,
    ) -> None:
        self.clock = clock
        self.preparer = Preparer(exposure)
        self.listening = TableModel(LISTEN_COLUMNS, RANGE_GROUPS, sort_column=L_PORT)
        self.connections = TableModel(conn_columns(remote_format), sort_column=C_LOCAL)
        self.interfaces = TableModel(IFACE_COLUMNS)
        self.snapshot: Snapshot | None = None
        self.previous: Snapshot | None = None
        self.keyed: dict[str, Sock] = {}
        self.summary: RangeSummary | None = None
        self.state_counts: dict[str, int] = {}
        self.refreshes = 0

    def apply(self, prepared: Prepared) -> None:
        now = self.clock()
        mark = not prepared.first
        for model, delta in ((self.listening, prepared.listen), (self.connections, prepared.conns)):
            model.apply(
                added=delta.added,
                updated=delta.updated,
                changed=delta.changed,
                gone=delta.gone,
                now=now,
                mark_new=mark,
            )
        if prepared.interfaces is not None:
            names = {s.key for s in prepared.interfaces}
            gone = [k for k in self.interfaces.rows if k not in names]
            self.interfaces.apply(updated=prepared.interfaces, gone=gone, now=now, mark_new=False)
        self.previous, self.snapshot = self.snapshot, prepared.snapshot
        self.keyed = prepared.keyed
        self.summary = prepared.summary
        self.state_counts = prepared.state_counts
        self.refreshes += 1

    def apply_snapshot(self, snap: Snapshot) -> Prepared:
        """Prepare and apply one snapshot (headless; what the benchmark times)."""
        prepared = self.preparer.prepare(snap)
        self.apply(prepared)
        return prepared

    def socket_for(self, model: TableModel, key: str) -> tuple[Sock, Snapshot] | None:
        """The socket of row ``key`` and the snapshot it came from (the previous one for a row
        that has just vanished)."""
        sock = self.keyed.get(key)
        if sock is not None and self.snapshot is not None:
            return sock, self.snapshot
        row = model.rows.get(key)
        if row is None or not isinstance(row.payload, SockRow):
            return None
        snap = self.previous or self.snapshot
        return (row.payload.sock, snap) if snap is not None else None


def remote_endpoint(value: Any) -> Endpoint | None:
    return Endpoint(value[0], value[1]) if value else None
