""":class:`LiveHealth`: :class:`app.health.HealthTracker`'s answers with work only where counters moved.

The tracker of app.health updates every connection on every poll (its rates, history, stall and
storm marks), and the dashboard then compared what every row shows with the poll before: at 20k
connections, tens of milliseconds a poll for the few that moved. Here a connection whose counters
(bytes acked and received, retransmits, RTT) did not move, with nothing in flight and nothing to
reset (its rates already zero, no stall count, no storm), costs one dictionary look-up and four
comparisons; everything else is updated as HealthTracker does. The history of an idle connection
is not appended to: it is kept as the polls in which it moved, and the polls between read as zero,
which is what HealthTracker would have appended.

``changed`` names the connections whose shown health (rates, RTT, retransmits, stalled, storm)
changed in the last update, or that came or went: only their rows are rebuilt. ``moving`` holds the
rates of those that moved data. tests/unit/test_livehealth.py checks both against HealthTracker
and app.health.shown_health on random sequences of polls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from app.churn import Churned
from app.fast.statstable import StatsTable
from app.health import (
    HISTORY,
    STALL_POLLS,
    STORM_RETRANS,
    ZERO,
    ConnHealth,
    HealthTracker,
    Rates,
    RawStats,
    Tracked,
    count_overflows,
    tracked,
)


class LiveConn(ConnHealth):
    """One connection; ``history`` is rebuilt from the polls in which it moved."""

    __slots__ = ("_samples", "_since", "_tracker", "rtt", "total")

    def __init__(
        self, tracker: LiveHealth, acked: int, received: int, total: int | None, rtt: int | None
    ) -> None:
        super().__init__(acked, received, total or 0)
        self._tracker = tracker
        self._since = tracker.polls  # history starts after this poll
        # (poll, rates) of the polls it moved in: a list from the first (most never move)
        self._samples: list[tuple[int, Rates]] | tuple[()] = ()
        self.rtt = rtt
        self.total = total

    @property
    def history(self) -> list[Rates]:
        """Rates of the last polls (at most :data:`app.health.HISTORY`), oldest first."""
        now = self._tracker.polls
        start = max(self._since, now - HISTORY)
        out = [ZERO] * (now - start)
        for poll, rates in self._samples:
            if poll > start:
                out[poll - start - 1] = rates
        return out

    @history.setter
    def history(self, _value: list[Rates]) -> None:  # (ConnHealth.__init__ sets it)
        pass


class LiveHealth(HealthTracker):
    """A :class:`HealthTracker` (same ``update``, ``get``, ``overflows``) that also says which
    connections' shown health changed (``changed``) and which move data (``moving``)."""

    def __init__(self) -> None:
        super().__init__()
        self.polls = 0  # updates with time passed since the one before (one history entry each)
        self.changed: set[int] = set()
        self.moving: dict[int, Rates] = {}
        self._busy: set[int] = set()  # nonzero rates, counting a stall or in a storm: look again
        self._unacked: set[int] = set()  # data in flight at the last poll: a stall may be counting
        # the fields of the last poll: a StatsTable's health_image (bytes), else a mapping
        self._last: Mapping[int, Tracked] | None = None
        self._image: bytes | None = None
        self._rows_before: list[int] = []  # the last table's decoded rows with a tcp_info
        self.by_bytes = 0  # updates told what moved by comparing StatsTable bytes (for tests)
        self._churn = Churned(lambda: (self.conns, self.moving))  # (app.churn)

    def update(
        self, stats: Mapping[int, RawStats] | None, taken: float, counters: tuple[int, int] | None
    ) -> None:
        conns = self.conns
        changed: set[int] = set()
        self.changed = changed
        if not stats:
            changed.update(conns)
            conns.clear()
            self._busy.clear()
            self.moving.clear()
            self._unacked.clear()
            self._last = self._image = None
            self._taken = taken
            return
        dt = taken - self._taken if self._taken is not None else 0.0
        if dt > 0:
            self.polls += 1
        poll = self.polls
        busy, moving = self._busy, self.moving
        get = conns.get
        # A StatsTable says which sockets' fields moved since the last poll's table by comparing
        # their bytes (health_moved): no tuple per connection, no pass over them in Python.
        table = stats if isinstance(stats, StatsTable) else None
        now_image = table.health_image() if table is not None else None
        found = None
        if table is not None and now_image is not None:
            if self._image is not None:
                found = table.health_moved(self._image)
            rows_now = table.row_inodes()
        else:
            rows_now = []
        self._image = now_image
        rows_before, self._rows_before = self._rows_before, rows_now
        fields: Mapping[int, Tracked]
        gone: Iterable[int]
        moved: list[int] | None = None
        if found is not None:
            self.by_bytes += 1
            self._last = None
            moved, maybe_gone = found
            field_of = table.health_of  # type: ignore[union-attr]
            # (every connection had a tcp_info in the last table: in its image or one of its rows)
            gone = {i for i in (*maybe_gone, *rows_before) if i in conns and field_of(i) is None}
        else:
            fields = tracked(stats)
            field_of = fields.get
            gone = conns.keys() - fields.keys()
        for inode in gone:  # closed (or no tcp_info any more)
            del conns[inode]
            busy.discard(inode)
            moving.pop(inode, None)
            self._unacked.discard(inode)
            changed.add(inode)
        todo: Iterable[int]
        if moved is not None:
            todo = moved
            again = {i for i in busy | self._unacked if field_of(i) is not None}
            if again:
                todo = again.union(todo)
        else:
            last = self._last
            self._last = fields if now_image is None else None  # (an image is kept instead)
            if last is None:  # the first poll, or the last one kept an image: look at every one
                todo = fields
            else:
                # Only connections whose fields moved since the last poll, and those that must be
                # looked at anyway (rates to bring back to zero, a stall count, a storm, data in
                # flight): an idle one costs one look-up and one comparison here.
                was = last.get
                todo = [inode for inode, row in fields.items() if was(inode) != row]
                again = (busy | self._unacked) & fields.keys()
                if again:
                    todo = again.union(todo)
        unacked_now = self._unacked
        for inode in todo:
            row = field_of(inode)
            if row is None:
                continue
            unacked, rtt, total, acked, received = row
            if unacked:
                unacked_now.add(inode)
            else:
                unacked_now.discard(inode)
            h: LiveConn | None = get(inode)  # type: ignore[assignment]
            if h is None:
                if acked is not None and received is not None:
                    conns[inode] = LiveConn(self, acked, received, total, rtt)
                    changed.add(inode)
                continue
            if (
                acked == h.acked
                and received == h.received
                and total == h.total
                and rtt == h.rtt
                and not unacked
                and inode not in busy
            ):
                continue  # idle, and nothing it shows will change
            if acked is None or received is None:
                self._forget(inode)
                continue
            before = (h.rates, h.rtt, h.total, h.stall_polls >= STALL_POLLS, h.storm)
            if dt > 0:
                h.rates = Rates(max(0, received - h.received) / dt, max(0, acked - h.acked) / dt)
                if h.rates.rx or h.rates.tx:
                    samples = h._samples
                    if not isinstance(samples, list):
                        h._samples = samples = []
                    samples.append((poll, h.rates))
                    while samples[0][0] <= poll - HISTORY:  # out of the window
                        del samples[0]
            h.stall_polls = h.stall_polls + 1 if unacked and acked == h.acked else 0
            h.storm = (total or 0) - h.retrans >= STORM_RETRANS
            h.acked, h.received, h.retrans = acked, received, total or 0
            h.rtt, h.total = rtt, total
            if h.rates.rx or h.rates.tx:
                moving[inode] = h.rates
            else:
                moving.pop(inode, None)
            if h.rates.rx or h.rates.tx or h.stall_polls or h.storm:
                busy.add(inode)
            else:
                busy.discard(inode)
            if before != (h.rates, h.rtt, h.total, h.stall_polls >= STALL_POLLS, h.storm):
                changed.add(inode)
        self._taken = taken
        self.overflows, self._counters = count_overflows(self._counters, counters)
        self._churn.check()

    def _forget(self, inode: int) -> None:
        self.conns.pop(inode, None)
        self._busy.discard(inode)
        self.moving.pop(inode, None)
        self.changed.add(inode)
