"""SnapshotTracker (app/tui/tracking.py) gives exactly what app.events.diff and row_keys give, poll
after poll, while looking only at the sockets that are new objects: checked on random sequences of
snapshots in which unchanged sockets are the same objects (as the Linux collector keeps them),
with siblings on one endpoint, ownerless duplicates, state and owner changes, recycled pids, a
collector that makes every object anew (psutil), and any order."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.backends.base import sort_key
from app.events import diff
from app.model import Endpoint, Family, ProcessInfo, Proto, Snapshot, Sock, SocketChange, row_keys
from app.tui import tracking
from app.tui.tracking import SnapshotTracker

STATES = ("LISTEN", "ESTABLISHED", "CLOSE_WAIT", "TIME_WAIT")


def a_sock(rng: random.Random, inodes: list[int]) -> Sock:
    proto = rng.choice((Proto.TCP, Proto.UDP))
    port = rng.choice((80, 443, 8080, 5353, 40000 + rng.randrange(3)))
    ip = rng.choice(("127.0.0.1", "0.0.0.0", "::1"))
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    raddr = None
    status = "BOUND" if proto is Proto.UDP else "LISTEN"
    if rng.random() < 0.5:
        raddr = Endpoint(ip if ip != "0.0.0.0" else "127.0.0.1", rng.choice((50000, 50001, 50002)))
        status = "ESTABLISHED" if proto is Proto.TCP else "BOUND"
    pid = rng.choice((None, 1, 2, 3, 4))
    inode = 0 if rng.random() < 0.2 else (inodes.pop() if inodes else rng.randrange(10**6))
    netns = rng.choice((0, 0, 0, 4026531999))
    return Sock(proto, fam, Endpoint(ip, port), raddr, status, pid, inode, netns)


def step_sockets(rng: random.Random, socks: list[Sock], inodes: list[int]) -> list[Sock]:
    out: list[Sock] = []
    for s in socks:
        r = rng.random()
        if r < 0.1:
            continue  # closed
        if r < 0.15 and s.proto is Proto.TCP and s.raddr is not None:
            out.append(Sock(s.proto, s.family, s.laddr, s.raddr, rng.choice(STATES), s.pid, s.inode, s.netns))
        elif r < 0.2:
            out.append(
                Sock(s.proto, s.family, s.laddr, s.raddr, s.status, rng.choice((None, 1, 2, 5)), s.inode)
            )
        elif r < 0.23:  # the same values, a new object
            out.append(Sock(s.proto, s.family, s.laddr, s.raddr, s.status, s.pid, s.inode, s.netns))
        else:
            out.append(s)  # unchanged: the same object
    for _ in range(rng.randrange(4)):
        if out and rng.random() < 0.4:  # a sibling on an endpoint that has one already
            t = rng.choice(out)
            out.append(
                Sock(
                    t.proto,
                    t.family,
                    t.laddr,
                    t.raddr,
                    t.status,
                    rng.choice((None, t.pid, 7)),
                    rng.choice((0, rng.randrange(10**6))),
                )
            )
        else:
            out.append(a_sock(rng, inodes))
    return out


def processes(rng: random.Random, old: dict[int, ProcessInfo] | None) -> dict[int, ProcessInfo]:
    out: dict[int, ProcessInfo] = {}
    for pid in (1, 2, 3, 4, 5, 7):
        prev = old.get(pid) if old else None
        if prev is not None and rng.random() < 0.9:
            out[pid] = prev
        elif rng.random() < 0.8:
            out[pid] = ProcessInfo(pid, 0, f"p{pid}", "", (), "u", float(rng.choice((0, 100, 200))))
    return out


def ordered(rng: random.Random, socks: list[Sock], mode: str) -> tuple[Sock, ...]:
    if mode == "sorted":
        return tuple(sorted(socks, key=lambda s: (s.endpoint_key, s.pid or 0, s.inode or 0)))
    if mode == "shuffled":
        socks = list(socks)
        rng.shuffle(socks)
    return tuple(socks)


@settings(max_examples=300, deadline=None)
# siblings paired by owner and state alone: a socket that stayed was reported closed, its key kept
@example(seed=2104497660, mode="sorted", polls=6)
@given(
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(["sorted", "shuffled", "kept"]),
    polls=st.integers(1, 12),
)
def test_same_events_and_keys_as_diff_and_row_keys(seed: int, mode: str, polls: int) -> None:
    rng = random.Random(seed)
    inodes = list(range(1000, 1200))
    rng.shuffle(inodes)
    tracker = SnapshotTracker()
    prev: Snapshot | None = None
    rows: dict[str, Sock] = {}
    before: dict[str, Sock] = {}  # the previous snapshot's row keys
    socks: list[Sock] = [a_sock(rng, inodes) for _ in range(rng.randrange(12))]
    procs = processes(rng, None)
    for poll in range(polls):
        if poll:
            socks = step_sockets(rng, socks, inodes)
            procs = processes(rng, procs)
            if rng.random() < 0.1:  # a collector that builds every object anew
                socks = [
                    Sock(s.proto, s.family, s.laddr, s.raddr, s.status, s.pid, s.inode, s.netns)
                    for s in socks
                ]
        cur = Snapshot(taken_at=float(poll), sockets=ordered(rng, socks, mode), processes=procs)
        socks = list(cur.sockets)
        step = tracker.step(cur)
        want_events = diff(prev if prev is not None else Snapshot(0.0, (), {}), cur)
        assert step.events == want_events
        want = dict(zip(row_keys(cur.sockets), cur.sockets, strict=True))
        assert {k: id(v) for k, v in step.keyed.items()} == {k: id(v) for k, v in want.items()}
        # a row moves from a key it had to a key it has, with the same socket or its successor
        for old, new in step.renamed.items():
            assert old in before and old not in want and new in want and new not in before
            assert before[old].endpoint_key == want[new].endpoint_key
        # a table that applies the step ends up with exactly the snapshot's rows
        moved = {new: rows[old] for old, new in step.renamed.items() if old in rows}
        for old in step.renamed:
            rows.pop(old, None)
        for k in step.dropped:
            rows.pop(k, None)
        rows.update(moved)
        for k, s in step.rebuilt:
            rows[k] = s
        assert {k: id(v) for k, v in rows.items()} == {k: id(v) for k, v in want.items()}
        closed = {e.key for e in step.events if e.kind.value == "closed"}
        assert closed <= set(step.dropped) | set(want)
        # a closed socket's key the snapshot still has is another socket's now: built again
        assert closed & set(want) <= {k for k, _s in step.rebuilt}
        prev, before = cur, want


def test_unchanged_sockets_are_not_looked_at_again() -> None:
    """The point: the second poll of an unchanged snapshot rebuilds nothing and reports nothing."""
    socks = tuple(
        Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 1000 + i), None, "LISTEN", 1, 5000 + i)
        for i in range(500)
    )
    tracker = SnapshotTracker()
    first = tracker.step(Snapshot(1.0, socks, {}))
    assert len(first.rebuilt) == 500 and len(first.events) == 500
    again = tracker.step(Snapshot(2.0, socks, {}))
    assert again.events == [] and again.rebuilt == [] and again.fresh == [] and again.stale == []
    one = Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 999), None, "LISTEN", 1, 4999)
    third = tracker.step(Snapshot(3.0, (one, *socks[1:]), {}))
    assert [e.kind.value for e in third.events] == ["opened", "closed"]
    assert third.rebuilt == [("tcp:127.0.0.1:999", one)] and third.dropped == ["tcp:127.0.0.1:1000"]


def told(prev: Snapshot | None, socks: tuple[Sock, ...], chain: int, seq: int) -> SocketChange:
    """What the fast collector says of ``socks`` against ``prev``: the new objects and the gone
    ones, by identity (tests/integration/test_socket_change.py checks the collector says that)."""
    if prev is None or seq == 0:
        return SocketChange(chain, 0, (), (), socks)
    before = {id(s) for s in prev.sockets}
    now = {id(s) for s in socks}
    fresh = tuple(s for s in socks if id(s) not in before)
    gone = tuple(s for s in prev.sockets if id(s) not in now)
    return SocketChange(chain, seq, fresh, gone, socks)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), polls=st.integers(1, 12))
def test_told_what_changed_the_same_events_and_keys(seed: int, polls: int) -> None:
    """With the collector's SocketChange (snapshots in sort_key order, ties in any order each poll,
    the chain sometimes broken or a copy with other sockets), the same as diff and row_keys."""
    rng = random.Random(seed)
    inodes = list(range(1000, 1200))
    rng.shuffle(inodes)
    tracker = SnapshotTracker()
    prev: Snapshot | None = None
    socks: list[Sock] = [a_sock(rng, inodes) for _ in range(rng.randrange(12))]
    procs = processes(rng, None)
    chain, seq = 1, 0
    for poll in range(polls):
        if poll:
            socks = step_sockets(rng, socks, inodes)
            procs = processes(rng, procs)
            seq += 1
            if rng.random() < 0.1:  # a broken chain (a port-filtered look, an owner gone)
                chain, seq = chain + 1, 0
        tie = {id(s): rng.random() for s in socks}
        ordered = tuple(sorted(socks, key=lambda s: (sort_key(s), tie[id(s)])))
        cur = Snapshot(float(poll), ordered, procs)
        object.__setattr__(cur, "change", told(prev, ordered, chain, seq))
        if prev is not None and rng.random() < 0.05:  # a copy with other sockets: not vouched for
            cur = replace(cur, sockets=ordered[1:])
        socks = list(cur.sockets)
        step = tracker.step(cur)
        assert step.events == diff(prev if prev is not None else Snapshot(0.0, (), {}), cur)
        want = dict(zip(row_keys(cur.sockets), cur.sockets, strict=True))
        assert {k: id(v) for k, v in step.keyed.items()} == {k: id(v) for k, v in want.items()}
        prev = cur


def test_told_what_changed_looks_at_no_other_socket() -> None:
    """The point of SocketChange: a step told what changed makes no dictionary of every socket
    (Indexed) and asks no index of an unchanged one; an untold step of the same snapshots does."""
    socks = tuple(
        Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 1000 + i), None, "LISTEN", 1, 5000 + i)
        for i in range(500)
    )
    made: list[int] = []
    real = tracking.Indexed.__init__

    def counting(self: tracking.Indexed, of: tuple[Sock, ...]) -> None:
        made.append(len(of))
        real(self, of)

    one = Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 999), None, "LISTEN", 1, 4999)
    two = Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 2000), None, "LISTEN", 1, 4998)
    later = (one, *socks[1:], two)
    for say in (True, False):
        made.clear()
        tracker = SnapshotTracker()
        first = Snapshot(1.0, socks, {})
        second = Snapshot(2.0, later, {})
        if say:
            object.__setattr__(first, "change", SocketChange(7, 0, (), (), socks))
            object.__setattr__(second, "change", SocketChange(7, 1, (one, two), (socks[0],), later))
        tracker.step(first)
        made.clear()
        try:
            tracking.Indexed.__init__ = counting  # type: ignore[method-assign]
            step = tracker.step(second)
        finally:
            tracking.Indexed.__init__ = real  # type: ignore[method-assign]
        assert [e.kind.value for e in step.events] == ["opened", "opened", "closed"]
        assert made == ([] if say else [len(later)])
