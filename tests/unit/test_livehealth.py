"""LiveHealth (app/tui/livehealth.py) answers as app.health.HealthTracker does, and its ``changed``
is what comparing app.health.shown_health of two polls names, on random sequences of polls in which
most connections are idle, some move data, stall, retransmit, come and go, or lose their tcp_info."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.fast import netlink
from app.fast.statstable import StatsTable
from app.health import HealthTracker, shown_health
from app.tui.livehealth import LiveHealth
from tests.unit.test_statstable import _add_chunk, message


def row(
    inode: int, unacked: int, rtt: int, total: int | None, acked: int | None, received: int | None
) -> tuple:
    # (rqueue, wqueue, inode, retransmits, unacked, last_sent, last_recv, rtt, rttvar, cwnd, total,
    #  acked, received, rate, sent)
    return (
        0,
        0,
        inode,
        0,
        unacked,
        random.randrange(10**6),
        random.randrange(10**6),
        rtt,
        5,
        10,
        total,
        acked,
        received,
        0,
        acked,
    )


def _move(rng: random.Random, s: list[int], r: float, acked: float, received: float, other: float) -> None:
    """One poll's random change of a connection's fields ``s`` (unacked, rtt, retransmits, bytes
    acked, bytes received): more bytes acked when ``r < acked``, received when ``r < received``,
    and each of the others with probability ``other``."""
    if r < acked:
        s[3] += rng.randrange(1, 5000)
    if r < received:
        s[4] += rng.randrange(0, 5000)
    if rng.random() < other:
        s[0] = rng.choice((0, 10))
    if rng.random() < other:
        s[2] += rng.choice((1, 12))
    if rng.random() < other:
        s[1] = rng.choice((100, 150, 200))


def _same_answers(live: LiveHealth, ref: HealthTracker, stats: Any, shown_before: dict) -> dict:
    """``live`` answers as ``ref`` after the same update, and its ``changed``/``moving`` are what
    shown_health says against the poll before (``shown_before``); returns this poll's shown health."""
    assert live.conns.keys() == ref.conns.keys()
    for inode, h in ref.conns.items():
        mine = live.get(inode)
        assert mine is not None
        assert (mine.rates, mine.stall_polls, mine.storm, mine.stalled) == (
            h.rates,
            h.stall_polls,
            h.storm,
            h.stalled,
        )
        assert mine.history == h.history, inode
    shown = shown_health(stats, ref)
    moved = {i for i, _ in shown.items() - shown_before.items()} | (shown_before.keys() - shown.keys())
    assert live.changed == moved
    assert live.moving == {i: v[0] for i, v in shown.items() if v[0].rx or v[0].tx}
    return shown


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), polls=st.integers(1, 45))
def test_same_answers_as_health_tracker(seed: int, polls: int) -> None:
    rng = random.Random(seed)
    state = {
        i: [0, 100, 0, 1000, 1000] for i in range(1, rng.randrange(2, 30))
    }  # unacked rtt total acked rcvd
    live, ref = LiveHealth(), HealthTracker()
    shown_before: dict = {}
    t = 100.0
    for _ in range(polls):
        t += rng.choice((0.0, 1.0, 2.0, 0.5))  # sometimes no time passes
        for inode, s in list(state.items()):
            r = rng.random()
            if r < 0.05:
                del state[inode]
                continue
            _move(rng, s, r, 0.3, 0.4, 0.05)
        for _ in range(rng.randrange(3)):
            state[rng.randrange(100, 200)] = [0, 100, 0, 0, 0]
        stats: dict[int, tuple] = {}
        for inode, (unacked, rtt, total, acked, received) in state.items():
            if rng.random() < 0.03:
                stats[inode] = (0, 0, inode)  # no tcp_info this time
            elif rng.random() < 0.03:
                stats[inode] = row(inode, unacked, rtt, total, None, received)
            else:
                stats[inode] = row(
                    inode, unacked, rtt, total if rng.random() > 0.02 else None, acked, received
                )
        stats[999] = (1, 128, 999)  # a listener: queues only
        if rng.random() < 0.05:
            stats = {}
        counters = (rng.randrange(5), 0) if rng.random() < 0.9 else None
        live.update(stats, t, counters)
        ref.update(stats, t, counters)
        assert live.overflows == ref.overflows
        shown_before = _same_answers(live, ref, stats, shown_before)


def test_an_idle_connection_is_not_updated() -> None:
    """The point: a connection whose counters did not move is left as it is (HealthTracker would
    build new rates and append to its history)."""
    live = LiveHealth()
    stats = {7: row(7, 0, 100, 0, 1000, 1000)}
    live.update(stats, 1.0, None)
    live.update({7: row(7, 0, 100, 0, 5000, 1000)}, 2.0, None)
    h = live.get(7)
    assert h is not None and h.rates.tx == 4000
    live.update({7: row(7, 0, 100, 0, 5000, 1000)}, 3.0, None)  # the rates fall to zero: looked at
    assert h.rates.tx == 0 and live.changed == {7}
    rates = h.rates
    live.update({7: row(7, 0, 100, 0, 5000, 1000)}, 4.0, None)
    assert h.rates is rates and live.changed == set() and h._samples == [(1, h.history[0])]
    assert [r.tx for r in h.history] == [4000, 0, 0]


def _table(rng: random.Random, state: dict[int, list[int]], order: list[int]) -> StatsTable:
    """The StatsTable a sock_diag read makes of ``state``: the sockets in ``order`` (a dump's,
    mostly kept from poll to poll), in chunks of the kernel's bytes, some as decoded rows (an
    uneven chunk), some without a tcp_info, orphans (inode 0) and a listener's queues."""
    table = StatsTable()
    msgs: list[bytes] = []
    for inode in order:
        unacked, rtt, total, acked, received = state[inode]
        raw = (
            0,
            unacked,
            rng.randrange(10**6),
            rng.randrange(10**6),
            rtt,
            5,
            10,
            total,
            acked,
            received,
            0,
            acked,
        )
        r = rng.random()
        if r < 0.03:
            table.add_row(inode, (0, 0, inode))  # no tcp_info this time
        elif r < 0.08:
            m = message(0, 0, inode, raw)
            table.add_row(inode, netlink.message_stats(m, 0, len(m)))  # type: ignore[arg-type]
        else:
            msgs.append(message(0, 0, inode, raw))
        if rng.random() < 0.02:
            msgs.append(message(0, 0, 0, raw))  # an orphan: no file, no inode
        if msgs and rng.random() < 0.1:  # where one recv's run of same-length messages ends
            _add_chunk(table, msgs)
            msgs = []
    if msgs:
        _add_chunk(table, msgs)
    table.add_row(999, (1, 128, 999))  # a listener: queues only
    return table


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), polls=st.integers(2, 30))
def test_told_by_the_tables_bytes_the_same_answers(seed: int, polls: int) -> None:
    """With StatsTables (what moved found by comparing their bytes, StatsTable.health_moved):
    the same answers as HealthTracker, and ``changed`` as shown_health says, with connections
    coming, going, moving in the dump and decoded as rows."""
    rng = random.Random(seed)
    state = {i: [0, 100, 0, 1000, 1000] for i in range(1, rng.randrange(2, 60))}
    order = list(state)
    live, ref = LiveHealth(), HealthTracker()
    shown_before: dict = {}
    t = 100.0
    for _ in range(polls):
        t += rng.choice((0.0, 1.0, 2.0))
        for inode, s in list(state.items()):
            r = rng.random()
            if r < 0.04:
                del state[inode]
                order.remove(inode)
                continue
            _move(rng, s, r, 0.15, 0.2, 0.03)
        for _ in range(rng.randrange(3)):
            new = rng.randrange(100, 200)
            if new not in state:
                state[new] = [0, 100, 0, 0, 0]
                order.insert(rng.randrange(len(order) + 1), new)
        if len(order) > 1 and rng.random() < 0.1:  # the dump's order changed
            a, b = rng.randrange(len(order)), rng.randrange(len(order))
            order[a], order[b] = order[b], order[a]
        stats = _table(rng, state, order)
        counters = (rng.randrange(5), 0)
        live.update(stats, t, counters)
        ref.update(stats, t, counters)
        shown_before = _same_answers(live, ref, stats, shown_before)
    # (How often the bytes path answers depends on the draw: a dump reordered, or no time passed,
    # falls back to the fields path. That the bytes path is taken where it should be is
    # test_idle_sockets_cost_no_tuple_each's: this one is about the answers either way.)


def test_idle_sockets_cost_no_tuple_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point: a poll of 3000 idle connections and one that moved decodes one socket's fields
    (health_of), makes no dictionary of every socket's fields (StatsTable.health), and names
    only the one that moved."""
    state = {i: [0, 100, 0, 1000, 1000] for i in range(1, 3001)}
    order = list(state)
    quiet = random.Random(0)
    live = LiveHealth()
    live.update(_steady(quiet, state, order), 1.0, None)
    live.update(_steady(quiet, state, order), 2.0, None)
    state[1500][3] += 100
    table = _steady(quiet, state, order)
    decoded: list[int] = []
    real = StatsTable.health_of

    def counting(self: StatsTable, inode: int) -> object:
        decoded.append(inode)
        return real(self, inode)

    monkeypatch.setattr(StatsTable, "health_of", counting)
    live.update(table, 3.0, None)
    assert live.by_bytes == 2 and table._health is None
    assert live.changed == {1500} and decoded == [1500]


def _steady(rng: random.Random, state: dict[int, list[int]], order: list[int]) -> StatsTable:
    """Like _table, every socket in chunks of 100 with a tcp_info."""
    table = StatsTable()
    for start in range(0, len(order), 100):
        msgs = []
        for inode in order[start : start + 100]:
            unacked, rtt, total, acked, received = state[inode]
            raw = (0, unacked, rng.randrange(10**6), 0, rtt, 5, 10, total, acked, received, 0, acked)
            msgs.append(message(0, 0, inode, raw))
        _add_chunk(table, msgs)
    return table
