"""Events from two snapshots: real listeners and connections on loopback, plus the pure rules."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

from app.collector import PsutilCollector
from app.events import Event, EventKind, changed_keys, diff, exposed_openings, restrict
from app.exposure import ExposureMap
from app.model import LISTEN, Endpoint, Family, ProcessInfo, Proto, Snapshot, Sock
from tests.helpers import child_listener, needs_ipv6, spawn_listener, wait_for


def _about(events: Iterable[Event], ports: set[int]) -> list[Event]:
    """Only the events about our own sockets: the machine is shared."""
    return [
        e
        for e in events
        if e.sock.laddr.port in ports or (e.sock.raddr is not None and e.sock.raddr.port in ports)
    ]


def _state(snap: Snapshot, key: str) -> str | None:
    return next((s.status for s in snap.sockets if s.endpoint_key == key), None)


def _listening() -> Snapshot:
    return restrict(PsutilCollector().collect(), "listening")


def test_listener_opened_then_closed() -> None:
    collector = PsutilCollector()
    before = restrict(collector.collect(), "listening")
    child = spawn_listener("tcp", "127.0.0.1", name="ps-ev-open")
    try:
        during = restrict(collector.collect(), "listening")
    finally:
        child.stop()
    after = restrict(collector.collect(), "listening")

    opened = _about(diff(before, during), {child.port})
    assert [(e.kind, e.sock.pid, e.key) for e in opened] == [
        (EventKind.OPENED, child.pid, f"tcp:127.0.0.1:{child.port}")
    ]
    assert opened[0].owner is not None and opened[0].owner.name == "ps-ev-open"
    assert opened[0].time == during.taken_at

    closed = _about(diff(during, after), {child.port})
    assert [(e.kind, e.sock.pid) for e in closed] == [(EventKind.CLOSED, child.pid)]
    assert closed[0].owner is not None and closed[0].owner.name == "ps-ev-open"  # as last seen


@needs_ipv6
def test_udp_listener_on_ipv6_loopback_opened() -> None:
    before = _listening()
    with child_listener("udp", "::1", name="ps-ev-udp6") as child:
        during = _listening()
    events = _about(diff(before, during), {child.port})
    assert [(e.kind, e.sock.proto, e.sock.status, e.key) for e in events] == [
        (EventKind.OPENED, Proto.UDP, "BOUND", f"udp:[::1]:{child.port}")
    ]


def test_owner_changed_when_another_process_takes_the_port() -> None:
    first = spawn_listener("tcp", "127.0.0.1", name="ps-ev-first")
    port = first.port
    try:
        before = _listening()
    finally:
        first.stop()
    with child_listener("tcp", "127.0.0.1", port, name="ps-ev-second") as second:
        after = _listening()
    events = _about(diff(before, after), {port})
    assert [e.kind for e in events] == [EventKind.OWNER_CHANGED]
    ev = events[0]
    assert ev.before is not None and ev.before.pid == first.pid
    assert ev.sock.pid == second.pid
    assert ev.before_owner is not None and ev.before_owner.name == "ps-ev-first"
    assert ev.owner is not None and ev.owner.name == "ps-ev-second"


def test_connection_state_change_when_peer_closes() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    cport = client.getsockname()[1]
    server_key = f"tcp:127.0.0.1:{port}>127.0.0.1:{cport}"
    client_key = f"tcp:127.0.0.1:{cport}>127.0.0.1:{port}"
    collector = PsutilCollector()
    try:
        before = collector.collect()
        assert _state(before, server_key) == _state(before, client_key) == "ESTABLISHED"
        client.close()  # the peer closes: our side of the connection goes to CLOSE_WAIT

        def peer_closed() -> Snapshot | None:
            snap = collector.collect()
            return snap if _state(snap, server_key) == "CLOSE_WAIT" else None

        after = wait_for(peer_closed)
        events = {e.key: e for e in _about(diff(before, after), {port})}
        assert set(events) == {server_key, client_key}  # the listener itself did not change
        server_ev = events[server_key]
        assert server_ev.kind is EventKind.STATE_CHANGED
        assert server_ev.before is not None and server_ev.before.status == "ESTABLISHED"
        assert server_ev.sock.status == "CLOSE_WAIT"
        assert server_ev.sock.pid == os.getpid()
        # the closing side moves on too (FIN_WAIT1/2); its owner became invisible: no owner change
        client_ev = events[client_key]
        assert client_ev.kind is EventKind.STATE_CHANGED
        assert client_ev.sock.status.startswith("FIN_WAIT")
    finally:
        conn.close()
        srv.close()
        client.close()


# --- the pure rules, on hand-made snapshots ---------------------------------------------------


def _proc(pid: int, name: str = "svc", started: float = 1000.0) -> ProcessInfo:
    return ProcessInfo(pid, 1, name, f"/usr/bin/{name}", (name,), "root", started)


def _listener(ip: str, port: int, pid: int | None, proto: Proto = Proto.TCP) -> Sock:
    fam = Family.IPV6 if ":" in ip else Family.IPV4
    return Sock(proto, fam, Endpoint(ip, port), None, LISTEN if proto is Proto.TCP else "BOUND", pid)


def _snap(t: float, socks: list[Sock], procs: list[ProcessInfo]) -> Snapshot:
    return Snapshot(taken_at=t, sockets=tuple(socks), processes={p.pid: p for p in procs})


def test_one_reuseport_sibling_closing_is_one_event() -> None:
    a, b = _listener("0.0.0.0", 80, 10), _listener("0.0.0.0", 80, 11)
    before = _snap(1.0, [a, b], [_proc(10), _proc(11)])
    after = _snap(2.0, [_listener("0.0.0.0", 80, 11)], [_proc(11)])
    events = diff(before, after)
    assert [(e.kind, e.sock.pid, e.key) for e in events] == [(EventKind.CLOSED, 10, "tcp:0.0.0.0:80#10")]
    assert diff(after, before) == [
        Event(EventKind.OPENED, 1.0, "tcp:0.0.0.0:80#10", a, _proc(10)),
    ]


def test_the_sibling_that_closed_is_told_by_its_inode() -> None:
    """Three listeners of one process on one endpoint; the first closes and the last is read as a
    new object: the closure is the first one's (its key and inode), not the last one's (paired by
    pid and state alone it was, and the dashboard marked the last one's row gone)."""

    def sibling(inode: int) -> Sock:
        return Sock(Proto.TCP, Family.IPV6, Endpoint("::1", 80), None, LISTEN, 1, inode)

    socks = [sibling(i) for i in (100, 101, 103)]
    before = _snap(1.0, socks, [_proc(1)])
    after = _snap(2.0, [socks[1], sibling(103)], [_proc(1)])
    assert [(e.kind, e.key, e.sock.inode) for e in diff(before, after)] == [
        (EventKind.CLOSED, "tcp:[::1]:80#1", 100)
    ]


def test_the_sibling_that_closed_is_told_without_inodes_too() -> None:
    """The same three siblings without inodes (the portable backend's), numbered by position: the
    two that stay are the same objects, so the closure is the first one's."""
    socks = [_listener("::1", 80, 1) for _ in range(3)]
    before = _snap(1.0, socks, [_proc(1)])
    after = _snap(2.0, socks[1:], [_proc(1)])
    [closed] = diff(before, after)
    assert closed.kind is EventKind.CLOSED and closed.sock is socks[0] and closed.key == "tcp:[::1]:80#1"


def test_owner_turning_invisible_is_not_a_change_but_pid_reuse_is() -> None:
    seen = _snap(1.0, [_listener("127.0.0.1", 53, 7)], [_proc(7)])
    hidden = _snap(2.0, [_listener("127.0.0.1", 53, None)], [])
    assert diff(seen, hidden) == []
    assert diff(hidden, seen) == []
    reused = _snap(3.0, [_listener("127.0.0.1", 53, 7)], [_proc(7, "other", started=2000.0)])
    events = diff(seen, reused)
    assert [e.kind for e in events] == [EventKind.OWNER_CHANGED]
    assert events[0].before_owner == _proc(7) and events[0].owner == _proc(7, "other", 2000.0)


def test_unchanged_snapshots_give_no_events() -> None:
    snap = PsutilCollector().collect()
    assert diff(snap, snap) == []


def test_exposed_openings_are_new_listeners_beyond_loopback() -> None:
    wide = _listener("0.0.0.0", 8080, 5)
    wide6 = _listener("::", 8081, 5, Proto.UDP)
    local = _listener("127.0.0.1", 8082, 5)
    conn = Sock(Proto.TCP, Family.IPV4, Endpoint("0.0.0.0", 8083), Endpoint("10.0.0.1", 1), "SYN_SENT", 5)
    taken = _listener("0.0.0.0", 8084, 6)
    before = _snap(1.0, [_listener("0.0.0.0", 9000, 5), _listener("0.0.0.0", 8084, 5)], [_proc(5)])
    after = _snap(2.0, [wide, wide6, local, conn, taken], [_proc(5), _proc(6, "intruder")])
    events = diff(before, after)
    alerts = exposed_openings(events, ExposureMap())
    assert [(e.kind, e.sock.laddr.port) for e in alerts] == [
        (EventKind.OPENED, 8080),
        (EventKind.OPENED, 8081),
        (EventKind.OWNER_CHANGED, 8084),
    ]
    # the closed exposed listener (9000), the loopback one and the connection are not alerts
    assert {e.sock.laddr.port for e in events} - {e.sock.laddr.port for e in alerts} == {9000, 8082, 8083}


def test_changed_keys_keeps_the_most_notable_kind() -> None:
    before = _snap(1.0, [_listener("127.0.0.1", 1, 5), _listener("127.0.0.1", 2, 5)], [_proc(5)])
    after = _snap(2.0, [_listener("127.0.0.1", 2, 6), _listener("127.0.0.1", 3, 5)], [_proc(5), _proc(6)])
    assert changed_keys(diff(before, after)) == {
        "tcp:127.0.0.1:1": EventKind.CLOSED,
        "tcp:127.0.0.1:2": EventKind.OWNER_CHANGED,
        "tcp:127.0.0.1:3": EventKind.OPENED,
    }
