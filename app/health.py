"""TCP health of sockets: RTT, retransmits, bytes and queues, as the Linux backend reads them.

A snapshot taken with stats (``FastCollector(stats=True)``) carries ``Snapshot.stats``: per socket
inode a flat tuple ``(rqueue, wqueue, inode, *tcp_info fields)`` (the tcp_info part only for TCP
sockets with a file descriptor), decoded from the kernel's bytes when asked for
(:mod:`app.fast.statstable`); the functions here turn one socket's entry into a :class:`TcpInfo`
or :class:`Queue` when shown, and the trackers read the five fields they follow of every
connection with :func:`tracked` (one pass per chunk of the dump, not one tuple of every field).
"""

from __future__ import annotations

TYPE_CHECKING = False  # on the CLI's start-up path: no typing at run time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import NamedTuple
else:
    from app.lite import NamedTuple

RawStats = tuple[int | None, ...]


class TcpInfo(NamedTuple):
    """What the dashboard and ``--stats`` show of one TCP socket; ``None`` where the kernel's
    struct is too short to say."""

    rtt_ms: float | None
    rttvar_ms: float | None
    retrans: int | None
    total_retrans: int | None
    bytes_sent: int | None
    bytes_acked: int | None
    bytes_received: int | None
    delivery_rate: int | None
    cwnd: int | None
    unacked: int | None
    last_send_ms: int | None
    last_recv_ms: int | None

    @classmethod
    def from_raw(cls, raw: tuple[int | None, ...]) -> TcpInfo:
        (
            retransmits,
            unacked,
            last_sent,
            last_recv,
            rtt,
            rttvar,
            cwnd,
            total,
            acked,
            received,
            rate,
            sent,
        ) = raw
        return cls(
            rtt_ms=None if rtt is None else rtt / 1000,
            rttvar_ms=None if rttvar is None else rttvar / 1000,
            retrans=retransmits,
            total_retrans=total,
            bytes_sent=sent,
            bytes_acked=acked,
            bytes_received=received,
            delivery_rate=rate,
            cwnd=cwnd,
            unacked=unacked,
            last_send_ms=last_sent,
            last_recv_ms=last_recv,
        )

    def as_dict(self) -> dict[str, float | int | None]:
        return self._asdict()


class Queue(NamedTuple):
    """A socket's queues from the diag message: for a listener, the accept queue (connections
    waiting for accept()) and its backlog; for others, bytes waiting to be read and to be sent."""

    current: int
    max: int


class ListenCounters(NamedTuple):
    """The host's TcpExt counters: accept-queue overflows and the drops they cause (since boot)."""

    overflows: int
    drops: int


def tcp_info(stats: Mapping[int, RawStats] | None, inode: int | None) -> TcpInfo | None:
    """The TCP info of the socket ``inode`` (``None``: not TCP, no stats, or not known)."""
    entry = stats.get(inode) if stats and inode else None
    if entry is None or len(entry) <= 3:
        return None
    return TcpInfo.from_raw(entry[3:])


def queue(stats: Mapping[int, RawStats] | None, inode: int | None) -> Queue | None:
    """The queues of the socket ``inode`` (``None`` when not known)."""
    entry = stats.get(inode) if stats and inode else None
    if entry is None or entry[0] is None or entry[1] is None:
        return None
    return Queue(entry[0], entry[1])


Tracked = tuple[int | None, int | None, int | None, int | None, int | None]


def tracked(stats: Mapping[int, RawStats]) -> Mapping[int, Tracked]:
    """inode -> ``(unacked, rtt µs, total_retrans, bytes_acked, bytes_received)`` of every socket
    of ``stats`` that has a tcp_info (inode 0, no file, is left out): what the trackers follow."""
    fields = getattr(stats, "health", None)  # a StatsTable: straight from the kernel's bytes
    if fields is not None:
        return fields()
    from app.fast.tcpinfo import health_of_rows  # (rows decoded already: tests' snapshots)

    return health_of_rows(stats.items())


# --- from two polls: rates, stalls, storms, full queues ------------------------------------------

STALL_POLLS = 3  # unacked data and no byte acknowledged for this many polls in a row: stalled
STORM_RETRANS = 10  # this many new retransmissions between two polls: a retransmit storm
QUEUE_FULL = 0.8  # an accept queue this full (of its backlog) is marked
HISTORY = 30  # rate samples kept per connection (the detail pane's sparkline)


class Rates(NamedTuple):
    """Throughput of one connection between the last two polls, in bytes per second."""

    rx: float
    tx: float


ZERO = Rates(0.0, 0.0)  # (one for every connection that moves no data: not one each)


class ConnHealth:
    """What the tracker knows of one connection: its latest rates, history and marks."""

    __slots__ = ("acked", "history", "rates", "received", "retrans", "stall_polls", "storm")

    def __init__(self, acked: int, received: int, retrans: int) -> None:
        self.acked = acked
        self.received = received
        self.retrans = retrans
        self.rates = ZERO
        self.history: list[Rates] = []
        self.stall_polls = 0
        self.storm = False

    @property
    def stalled(self) -> bool:
        return self.stall_polls >= STALL_POLLS


class HealthTracker:
    """Follows the TCP connections of successive stats snapshots (by inode): bytes/s in and out
    from the difference of two polls, a stall mark (unacked data and no progress for
    :data:`STALL_POLLS` polls), a retransmit-storm mark, and the host's accept-queue overflows
    since the previous poll. Runs off the UI thread; the work per poll is one pass over the
    snapshot's stats."""

    def __init__(self) -> None:
        self.conns: dict[int, ConnHealth] = {}
        self._taken: float | None = None
        self._counters: tuple[int, int] | None = None
        self.overflows = 0  # accept-queue overflows on the host between the last two polls

    def update(
        self, stats: Mapping[int, RawStats] | None, taken: float, counters: tuple[int, int] | None
    ) -> None:
        if not stats:
            self.conns.clear()
            self._taken = taken
            return
        dt = taken - self._taken if self._taken is not None else 0.0
        old = self.conns
        new: dict[int, ConnHealth] = {}
        for inode, (unacked, _rtt, total, acked, received) in tracked(stats).items():
            if acked is None or received is None:
                continue
            prev = old.get(inode)
            if prev is None:
                new[inode] = ConnHealth(acked, received, total or 0)
                continue
            if dt > 0:
                prev.rates = Rates(max(0, received - prev.received) / dt, max(0, acked - prev.acked) / dt)
                prev.history.append(prev.rates)
                if len(prev.history) > HISTORY:
                    del prev.history[0]
            prev.stall_polls = prev.stall_polls + 1 if unacked and acked == prev.acked else 0
            prev.storm = (total or 0) - prev.retrans >= STORM_RETRANS
            prev.acked, prev.received, prev.retrans = acked, received, total or 0
            new[inode] = prev
        self.conns = new
        self._taken = taken
        self.overflows, self._counters = count_overflows(self._counters, counters)

    def get(self, inode: int | None) -> ConnHealth | None:
        return self.conns.get(inode) if inode else None


def count_overflows(
    before: tuple[int, int] | None, now: tuple[int, int] | None
) -> tuple[int, tuple[int, int] | None]:
    """The host's accept-queue overflows between two readings of its listen counters (0 without
    both), and the reading to compare the next one with."""
    if now is None:
        return 0, before
    return (max(0, now[0] - before[0]) if before is not None else 0), now


def queue_marked(q: Queue | None, overflowed: bool = False) -> bool:
    """A listener's accept queue deserves a mark: at least :data:`QUEUE_FULL` of its backlog, or
    the host counted overflows since the last poll while this queue was not empty."""
    if q is None or q.max <= 0:
        return False
    return q.current >= QUEUE_FULL * q.max or (overflowed and q.current > 0)


# --- what a dashboard row shows of a connection (additive helper for app/tui) ---------------------

Shown = tuple[Rates, int | None, int | None, bool, bool]


def shown_health(stats: Mapping[int, RawStats] | None, tracker: HealthTracker) -> dict[int, Shown]:
    """Per tracked connection what a dashboard row shows of it: ``(rates, rtt µs, total
    retransmits, stalled, storm)``, in one pass. Comparing two polls' results (``a.items() -
    b.items()``) names the connections whose shown values changed, so only their rows are rebuilt."""
    if not stats:
        return {}
    get = tracked(stats).get
    return {
        inode: (h.rates, row[1], row[2], h.stall_polls >= STALL_POLLS, h.storm)
        for inode, h in tracker.conns.items()
        if (row := get(inode)) is not None
    }
