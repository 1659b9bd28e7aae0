"""The dashboard's work per poll follows what changed (#14), and the rows stay exactly the snapshot's.

Snapshots here reuse the Sock objects of unchanged sockets, as the Linux collector does. "Work" is
counted, never timed: the rows built (``Preparer.row`` calls) and the rows handed to the tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from app.exposure import classify
from app.model import Endpoint, Family, ProcessInfo, Proto, Snapshot, Sock, row_keys
from app.tui.rows import Preparer
from app.tui.state import Dashboard
from tests.tui.fixtures import EPHEMERAL, NOW, FixedExposure, FixedFacts, tcp
from widgets.table_model import Mark

PROCS = {
    p: ProcessInfo(p, 1, f"proc{p}", f"/bin/proc{p}", (f"proc{p}",), "u", NOW - 100) for p in range(1, 60)
}


def snap(socks: list[Sock] | tuple[Sock, ...], t: float = 0.0, **kwargs: object) -> Snapshot:
    procs = kwargs.pop("processes", PROCS)
    return Snapshot(NOW + t, tuple(socks), procs, ephemeral=EPHEMERAL, privileged=True, **kwargs)  # type: ignore[arg-type]


def rows_of(d: Dashboard) -> set[str]:
    return set(d.listening.rows) | set(d.connections.rows)


@contextmanager
def counting(preparer: Preparer) -> Iterator[list[Sock]]:
    built: list[Sock] = []
    real = preparer.row

    def row(sock: Sock, snapshot: Snapshot, conns: int = 0):  # type: ignore[no-untyped-def]
        built.append(sock)
        return real(sock, snapshot, conns)

    preparer.row = row  # type: ignore[method-assign]
    try:
        yield built
    finally:
        preparer.row = real  # type: ignore[method-assign]


def test_a_sibling_on_a_listeners_endpoint_leaves_no_ghost_row() -> None:
    """A second process listening on the same address and port (SO_REUSEPORT) renumbers the rows
    of that endpoint (``tcp:0.0.0.0:80`` becomes ``...#1`` and ``...#2``): the first listener's
    row moves to its new key, keeping its age, and no row is left under the old key."""
    first = tcp("0.0.0.0", 80, pid=1, inode=11)
    other = tcp("0.0.0.0", 443, pid=3, inode=13)
    d = Dashboard(FixedExposure(), clock=lambda: NOW)
    d.apply_snapshot(snap([first, other]))
    assert set(d.listening.rows) == {"tcp:0.0.0.0:80", "tcp:0.0.0.0:443"}
    born = d.listening.rows["tcp:0.0.0.0:80"].born
    d.clock = lambda: NOW + 50
    sibling = tcp("0.0.0.0", 80, pid=2, inode=12)
    second = snap([first, sibling, other], 2)
    d.apply_snapshot(second)
    assert (
        set(d.listening.rows)
        == set(second.keyed())
        == {"tcp:0.0.0.0:80#1", "tcp:0.0.0.0:80#2", "tcp:0.0.0.0:443"}
    )
    moved = d.listening.rows["tcp:0.0.0.0:80#1"]
    assert moved.born == born and moved.payload.sock is first and moved.mark is Mark.NONE
    assert d.listening.rows["tcp:0.0.0.0:80#2"].mark is Mark.NEW
    # the first one goes: its row is marked closed for a refresh, the sibling's takes the plain key
    third = snap([sibling, other], 4)
    d.apply_snapshot(third)
    d.apply_snapshot(snap([sibling, other], 6))
    assert set(d.listening.rows) == set(third.keyed()) == {"tcp:0.0.0.0:80", "tcp:0.0.0.0:443"}
    assert d.listening.rows["tcp:0.0.0.0:80"].payload.sock is sibling


def test_the_cursor_follows_a_row_that_moves_to_another_key() -> None:
    first = tcp("127.0.0.1", 8080, pid=1, inode=21)
    d = Dashboard(FixedExposure(), clock=lambda: NOW)
    d.apply_snapshot(snap([first, tcp("127.0.0.1", 9090, pid=1, inode=22)]))
    assert d.listening.select_key("tcp:127.0.0.1:8080")
    d.apply_snapshot(
        snap([first, tcp("127.0.0.1", 8080, pid=4, inode=23), tcp("127.0.0.1", 9090, pid=1, inode=22)], 2)
    )
    assert d.listening.cursor_key == "tcp:127.0.0.1:8080#1"
    assert d.listening.cursor_row().payload.sock is first  # type: ignore[union-attr]


def big_host(n_listeners: int = 300, per: int = 8) -> tuple[list[Sock], int]:
    """Listeners on 127.0.0.1 and a few connections to each (both ends), spread over pids."""
    socks: list[Sock] = []
    inode = 1000
    client = 40000
    for i in range(n_listeners):
        port = 2000 + i
        pid = 1 + i % 50
        inode += 1
        socks.append(tcp("127.0.0.1", port, pid=pid, inode=inode))
        for _ in range(per):
            client += 1
            inode += 2
            socks.append(tcp("127.0.0.1", port, "ESTABLISHED", pid, Endpoint("127.0.0.1", client), inode))
            socks.append(
                tcp("127.0.0.1", client, "ESTABLISHED", 51 + i % 8, Endpoint("127.0.0.1", port), inode + 1)
            )
    return socks, client


def test_work_per_poll_follows_what_changed() -> None:
    socks, client = big_host()
    d = Dashboard(FixedExposure(), clock=lambda: NOW, facts=FixedFacts())
    preparer = d.preparer
    with counting(preparer) as built:
        d.apply_snapshot(snap(socks))
    assert len(built) == len(socks)  # the first poll builds every row
    with counting(preparer) as built:
        again = d.apply_snapshot(snap(socks, 2))
    assert built == [] and again.events == []
    assert not (again.listen.added or again.listen.updated or again.conns.added or again.conns.updated)
    # one connection closes (both ends), one opens: its two ends and the two listeners' counts
    gone = [s for s in socks if s.laddr.port == 40001 or (s.raddr is not None and s.raddr.port == 40001)]
    new = [
        tcp("127.0.0.1", 2100, "ESTABLISHED", 51, Endpoint("127.0.0.1", client + 1), 99001),
        tcp("127.0.0.1", client + 1, "ESTABLISHED", 52, Endpoint("127.0.0.1", 2100), 99002),
    ]
    later = [s for s in socks if s not in gone] + new
    with counting(preparer) as built:
        third = d.apply_snapshot(snap(sorted(later, key=lambda s: s.endpoint_key), 4))
    assert sorted(s.laddr.port for s in built) == sorted([2000, 2100, client + 1, 2100])
    assert {e.kind.value for e in third.events} == {"opened", "closed"} and len(third.events) == 4
    listeners = {r.payload.sock.laddr.port: r for r in d.listening.rows.values()}
    assert listeners[2000].values[-3] == 7 and listeners[2100].values[-3] == 9  # the Conns column
    assert rows_of(d) == set(row_keys(later)) | {e.key for e in third.events if e.kind.value == "closed"}


def test_a_listener_row_follows_each_of_its_inputs() -> None:
    """Its process, the connections to it, its holders, its queue, its exposure."""
    lst = tcp("127.0.0.1", 7000, pid=5, inode=501)
    conn_a = tcp("127.0.0.1", 7000, "ESTABLISHED", 5, Endpoint("127.0.0.1", 41000), 502)
    d = Dashboard(FixedExposure(), clock=lambda: NOW)
    stats = {501: (0, 128, 501)}
    d.apply_snapshot(snap([lst], stats=stats))

    def row():  # type: ignore[no-untyped-def]
        return next(iter(d.listening.rows.values())).payload

    assert row().conns == 0 and row().name == "proc5"
    d.apply_snapshot(snap([lst, conn_a], 2, stats=stats))
    assert row().conns == 1
    renamed = dict(PROCS)
    renamed[5] = dataclasses.replace(PROCS[5], name="renamed")  # exec: same pid, same start
    d.apply_snapshot(snap([lst, conn_a], 4, stats=stats, processes=renamed))
    assert row().name == "renamed"
    d.apply_snapshot(snap([lst, conn_a], 6, stats=stats, processes=renamed, holders={501: (5, 6)}))
    assert row().holders == 2 and row().process == "renamed +1"
    d.apply_snapshot(snap([lst, conn_a], 8, stats={501: (120, 128, 501)}, processes=renamed))
    assert row().queue == (120, 128) and row().queue_full and row().holders == 1
    d.apply_snapshot(snap([lst], 10, stats={501: (0, 128, 501)}, processes=renamed))
    assert row().conns == 0 and not row().queue_full

    class Moving:
        """The host's addresses change: 192.0.2.7 appears on an interface."""

        interfaces: dict[str, list[str]] = {}

        def classify(self, ip: str):  # type: ignore[no-untyped-def]
            return classify(ip, self.interfaces)

    moving = Moving()
    d2 = Dashboard(moving, clock=lambda: NOW)
    there = tcp("192.0.2.7", 7000, pid=5, inode=701)
    d2.apply_snapshot(snap([there]))
    assert next(iter(d2.listening.rows.values())).payload.exposure.label == "unknown address"
    moving.interfaces = {"192.0.2.7": ["eth9"]}
    d2.apply_snapshot(snap([there], 2))
    assert next(iter(d2.listening.rows.values())).payload.exposure.label == "eth9"


def test_a_new_object_for_the_same_socket_changes_nothing_shown() -> None:
    """A collector that builds new objects each poll (psutil) costs a full pass, and is correct."""
    socks = [
        tcp("127.0.0.1", 80, pid=1, inode=1),
        tcp("127.0.0.1", 80, "ESTABLISHED", 1, Endpoint("127.0.0.1", 5000), 2),
    ]
    d = Dashboard(FixedExposure(), clock=lambda: NOW)
    d.apply_snapshot(snap(socks))
    copies = [dataclasses.replace(s) for s in socks]
    again = d.apply_snapshot(snap(copies, 2))
    assert again.events == [] and rows_of(d) == set(row_keys(copies))
    assert all(r.mark is Mark.NONE for r in d.listening.rows.values())
    assert d.listening.rows["tcp:127.0.0.1:80"].payload.sock is copies[0]


def test_a_bound_socket_that_starts_listening_moves_to_the_listening_table() -> None:
    bound = Sock(Proto.TCP, Family.IPV4, Endpoint("127.0.0.1", 6000), None, "CLOSE", 1, 601)
    d = Dashboard(FixedExposure(), clock=lambda: NOW)
    d.apply_snapshot(snap([bound]))
    assert "tcp:127.0.0.1:6000" in d.connections.rows
    listening = dataclasses.replace(bound, status="LISTEN")
    d.apply_snapshot(snap([listening], 2))
    assert "tcp:127.0.0.1:6000" in d.listening.rows and "tcp:127.0.0.1:6000" not in d.connections.rows
